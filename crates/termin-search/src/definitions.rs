//! Reading the official SearchParameter definitions out of the R5 core package.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use termin_fhir::ResourceType;

/// The package whose SearchParameter and StructureDefinition resources drive search.
pub const CORE_PACKAGE: &str = "hl7.fhir.r5.core#5.0.0";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the FHIR package {CORE_PACKAGE} is not in any of {searched:?}; install it with scripts/fhir-packages \
         (it runs `npm pack hl7.fhir.r5.core@5.0.0` into $HOME/.fhir/packages)"
    )]
    PackageMissing { searched: Vec<PathBuf> },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown time zone {0:?} (an IANA name such as Europe/Vienna)")]
    TimeZone(String),
    #[error("SearchParameter {url}: the expression does not compile: {message}")]
    Expression { url: String, message: String },
}

impl LoadError {
    pub(crate) fn file(path: &Path, message: impl ToString) -> Self {
        LoadError::File {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}

/// `<dir>/hl7.fhir.r5.core#5.0.0/package` in the first directory that has it.
pub fn find_core_package(package_dirs: &[PathBuf]) -> Result<PathBuf, LoadError> {
    package_dirs
        .iter()
        .map(|dir| dir.join(CORE_PACKAGE).join("package"))
        .find(|package| package.join("package.json").is_file())
        .ok_or_else(|| LoadError::PackageMissing {
            searched: package_dirs.to_vec(),
        })
}

/// The FHIR search parameter types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamType {
    pub fn code(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Date => "date",
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Composite => "composite",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Special => "special",
        }
    }
}

/// The parts of a SearchParameter resource search needs.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Definition {
    pub url: String,
    pub code: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    pub expression: Option<String>,
    #[serde(default)]
    pub base: Vec<String>,
    #[serde(default)]
    pub target: Vec<String>,
    #[serde(default)]
    pub experimental: bool,
}

/// Base types whose parameters apply to every served type.
pub(crate) const UNIVERSAL_BASES: [&str; 2] = ["Resource", "DomainResource"];

impl Definition {
    /// The served types this definition applies to.
    pub fn served_bases(&self) -> Vec<ResourceType> {
        if self.base.iter().any(|b| UNIVERSAL_BASES.contains(&b.as_str())) {
            return ResourceType::ALL.to_vec();
        }
        self.base.iter().filter_map(|b| b.parse().ok()).collect()
    }
}

/// Every non-experimental SearchParameter of the package that applies to a served type.
/// Experimental ones are the specification's examples (`SearchParameter-example*.json`).
pub(crate) fn load_definitions(package: &Path) -> Result<Vec<Definition>, LoadError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(package)
        .map_err(|e| LoadError::file(package, e))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("SearchParameter-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut definitions = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| LoadError::file(&path, e))?;
        let definition: Definition = serde_json::from_str(&text).map_err(|e| LoadError::file(&path, e))?;
        if !definition.experimental && !definition.served_bases().is_empty() {
            definitions.push(definition);
        }
    }
    Ok(definitions)
}

/// The part of a multi-resource expression (`Patient.name | Practitioner.name | ...`) that can
/// select anything on `resource_type`: union terms that start with another resource type's
/// name select nothing on it, so they are dropped before compiling. `None` when nothing is left.
pub(crate) fn expression_for(expression: &str, resource_type: ResourceType) -> Option<String> {
    let kept: Vec<&str> = split_top_level_union(expression)
        .into_iter()
        .map(str::trim)
        .filter(|term| applies_to(term, resource_type))
        .collect();
    (!kept.is_empty()).then(|| kept.join(" | "))
}

fn applies_to(term: &str, resource_type: ResourceType) -> bool {
    let start = term.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let first: String = start.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let names_a_type = first.starts_with(|c: char| c.is_ascii_uppercase());
    !names_a_type || first == resource_type.as_str() || UNIVERSAL_BASES.contains(&first.as_str())
}

/// Splits on `|` outside parentheses, brackets and string literals.
fn split_top_level_union(expression: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in expression.char_indices() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                terms.push(&expression[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&expression[start..]);
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_terms_of_the_type() {
        let shared = "Patient.address.city | Person.address.city | Practitioner.address.city";
        assert_eq!(expression_for(shared, ResourceType::Patient).as_deref(), Some("Patient.address.city"));
        assert_eq!(expression_for(shared, ResourceType::Slot), None);
        let date = "AllergyIntolerance.recordedDate | (start | requestedPeriod.start).first() | Flag.period";
        assert_eq!(
            expression_for(date, ResourceType::Appointment).as_deref(),
            Some("(start | requestedPeriod.start).first()")
        );
        assert_eq!(expression_for("Resource.meta.tag", ResourceType::Slot).as_deref(), Some("Resource.meta.tag"));
        assert_eq!(
            expression_for("(Patient.deceased.ofType(dateTime)) | Person.x", ResourceType::Patient).as_deref(),
            Some("(Patient.deceased.ofType(dateTime))")
        );
        assert_eq!(
            expression_for("Patient.telecom.where(system='a|b') | X.y", ResourceType::Patient).as_deref(),
            Some("Patient.telecom.where(system='a|b')")
        );
    }
}
