//! The search parameters of the served types, loaded from the official R5 definitions.

use crate::definitions::{CORE_PACKAGE, LoadError, ParamType, expression_for, find_core_package, load_definitions};
use crate::extract;
use crate::model::ElementModel;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use termin_fhir::ResourceType;
use termin_fhirpath::{EvalContext, Expression};
use termin_store::{DateIndex, IndexEntries, IndexKind};

/// The time zone dates without an offset are read in, unless configured otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Vienna";

/// Bumped whenever the rows extracted for the same definitions change, so stored indexes are
/// rebuilt at start-up.
const INDEX_FORMAT: u32 = 3;

/// Parameters whose type is supported but whose meaning is not a value of the resource:
/// `_in` asks for membership in a List, Group or CareTeam, none of which is served here.
const MEMBERSHIP_PARAMS: [&str; 1] = ["_in"];

/// The special parameters Termin serves: `near` (Location.position), indexed as positions.
const SPECIAL_PARAMS: [&str; 1] = ["near"];

/// One search parameter as it applies to one resource type.
#[derive(Debug)]
pub struct SearchParam {
    pub code: String,
    /// The canonical URL of the SearchParameter definition.
    pub url: String,
    pub kind: ParamType,
    /// Resource types a reference parameter may point to.
    pub targets: Vec<String>,
    /// The official expression, restricted to the union terms that apply to this type.
    pub expression_text: String,
    expression: Expression,
}

impl SearchParam {
    pub(crate) fn expression(&self) -> Option<&Expression> {
        // `_id` is matched on the logical id itself; it needs no index rows.
        (self.code != "_id").then_some(&self.expression)
    }

    /// The index table its rows live in.
    pub fn index_kind(&self) -> Option<IndexKind> {
        index_kind(self.kind, &self.code)
    }

    /// The modifiers Termin supports on this parameter (the CapabilityStatement lists them).
    pub fn modifiers(&self) -> &'static [&'static str] {
        if self.code == "_id" {
            return &["not"];
        }
        match self.kind {
            ParamType::Token => &["missing", "not", "text", "of-type"],
            ParamType::String => &["missing", "exact", "contains"],
            ParamType::Reference => &["missing", "identifier", "[type]"],
            ParamType::Uri => &["missing", "below", "above"],
            ParamType::Date | ParamType::Number | ParamType::Quantity | ParamType::Special => &["missing"],
            ParamType::Composite => &[],
        }
    }

    /// Whether `|` in a value separates a canonical URL from its version (otherwise a
    /// reference value `system|value` is read as an identifier).
    pub(crate) fn targets_canonical_resources(&self) -> bool {
        const CANONICAL: [&str; 8] = [
            "StructureDefinition",
            "ValueSet",
            "CodeSystem",
            "ConceptMap",
            "SearchParameter",
            "OperationDefinition",
            "Questionnaire",
            "ImplementationGuide",
        ];
        self.targets.iter().any(|t| CANONICAL.contains(&t.as_str()))
    }

    /// Served types a reference parameter may point to.
    pub fn served_targets(&self) -> Vec<ResourceType> {
        self.targets.iter().filter_map(|t| t.parse().ok()).collect()
    }
}

pub(crate) fn index_kind(kind: ParamType, code: &str) -> Option<IndexKind> {
    Some(match kind {
        ParamType::Token => IndexKind::Token,
        ParamType::String => IndexKind::String,
        ParamType::Date => IndexKind::Date,
        ParamType::Number => IndexKind::Number,
        ParamType::Quantity => IndexKind::Quantity,
        ParamType::Reference => IndexKind::Reference,
        ParamType::Uri => IndexKind::Uri,
        ParamType::Special if SPECIAL_PARAMS.contains(&code) => IndexKind::Position,
        ParamType::Composite | ParamType::Special => return None,
    })
}

/// The search parameters of every served type, the element model their expressions are
/// evaluated with, and the time zone for dates without offset.
pub struct SearchParameters {
    params: HashMap<ResourceType, Vec<SearchParam>>,
    model: ElementModel,
    time_zone: TimeZone,
    time_zone_name: String,
    fingerprint: String,
    /// The Slot parameters are those [`crate::slot_index`] takes rows for directly.
    slot_direct: bool,
}

impl std::fmt::Debug for SearchParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchParameters")
            .field("time_zone", &self.time_zone_name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SearchParameters {
    /// Loads the R5 core package from the first of `package_dirs` (FHIR package-cache layout)
    /// that holds it. Only definitions whose base is a served type (or Resource/DomainResource)
    /// are kept.
    pub fn load(package_dirs: &[PathBuf], time_zone: &str) -> Result<SearchParameters, LoadError> {
        let zone = TimeZone::get(time_zone).map_err(|_| LoadError::TimeZone(time_zone.to_owned()))?;
        let package = find_core_package(package_dirs)?;
        let roots: Vec<&str> = ResourceType::ALL.iter().map(|t| t.as_str()).collect();
        let model = ElementModel::load(&package, &roots)?;
        let mut params: HashMap<ResourceType, Vec<SearchParam>> = HashMap::new();
        for definition in load_definitions(&package)? {
            let supported = index_kind(definition.kind, &definition.code).is_some()
                && !MEMBERSHIP_PARAMS.contains(&definition.code.as_str());
            let Some(expression) = definition.expression.as_deref().filter(|_| supported) else {
                continue;
            };
            for resource_type in definition.served_bases() {
                let Some(text) = expression_for(expression, resource_type) else {
                    continue;
                };
                let compiled = Expression::parse(&text)
                    .map_err(|e| LoadError::Expression { url: definition.url.clone(), message: e.to_string() })?;
                params.entry(resource_type).or_default().push(SearchParam {
                    code: definition.code.clone(),
                    url: definition.url.clone(),
                    kind: definition.kind,
                    targets: definition.target.clone(),
                    expression_text: text,
                    expression: compiled,
                });
            }
        }
        for list in params.values_mut() {
            list.sort_by(|a, b| a.code.cmp(&b.code));
            list.dedup_by(|a, b| a.code == b.code);
        }
        let fingerprint = fingerprint(&params, time_zone);
        let slot_direct = params.get(&ResourceType::Slot).is_some_and(|slot| crate::slot_index::expected(slot));
        Ok(SearchParameters {
            params,
            model,
            time_zone: zone,
            time_zone_name: time_zone.to_owned(),
            fingerprint,
            slot_direct,
        })
    }

    /// The supported parameters of a type, ordered by code.
    pub fn params(&self, resource_type: ResourceType) -> &[SearchParam] {
        self.params.get(&resource_type).map_or(&[], Vec::as_slice)
    }

    pub fn param(&self, resource_type: ResourceType, code: &str) -> Option<&SearchParam> {
        let params = self.params(resource_type);
        params.binary_search_by(|p| p.code.as_str().cmp(code)).ok().map(|i| &params[i])
    }

    /// The top-level elements the R5 definition of the type makes mandatory (min ≥ 1), e.g.
    /// Slot `schedule`, `status`, `start`, `end`: `_elements` keeps them, as R5 search asks.
    pub fn mandatory_elements(&self, resource_type: ResourceType) -> &[String] {
        self.model.mandatory_elements(resource_type.as_str())
    }

    /// The top-level elements the R5 definition of the type marks isSummary (choice elements
    /// as `name[x]`): what `_summary=true` returns besides the mandatory ones.
    pub fn summary_elements(&self, resource_type: ResourceType) -> &[String] {
        self.model.summary_elements(resource_type.as_str())
    }

    /// The element model of the R5 definitions, for subsetting nested elements: `parent` is a
    /// resource type, a complex data type (`HumanName`) or a backbone element's path
    /// (`Appointment.participant`), as [`ElementTypes::child_type`] names them.
    pub fn element_types(&self) -> ElementTypes<'_> {
        ElementTypes(&self.model)
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// Changes whenever the same resource would get other index rows: other definitions,
    /// another extraction format, another time zone.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The index rows of a resource (its `resourceType` decides the parameters). A Slot of the
    /// shape the server writes gets its rows directly from its elements ([`crate::slot_index`]).
    pub fn index_entries(&self, resource: &Map<String, Value>) -> IndexEntries {
        let Some(resource_type) =
            resource.get("resourceType").and_then(Value::as_str).and_then(|t| t.parse::<ResourceType>().ok())
        else {
            return IndexEntries::default();
        };
        if resource_type == ResourceType::Slot
            && self.slot_direct
            && let Some(entries) = crate::slot_index::slot_index(resource, |param, text| self.date_index(param, text))
        {
            return entries;
        }
        self.extracted_entries(resource_type, resource)
    }

    /// The index rows of a resource by evaluating each parameter's FHIRPath expression.
    pub(crate) fn extracted_entries(&self, resource_type: ResourceType, resource: &Map<String, Value>) -> IndexEntries {
        // The evaluator reads a JSON value; the map is wrapped once per resource.
        let value = Value::Object(resource.clone());
        let context = EvalContext::new().with_model(&self.model);
        let mut entries = extract::index_entries(self.params(resource_type), &value, &context, &self.time_zone);
        if resource_type == ResourceType::Slot {
            entries.dates.extend(crate::slot_period::slot_period_row(resource));
        }
        entries
    }

    /// The date row of an instant, date or dateTime text, as extraction builds it (dates
    /// without offset in the registry's time zone): for resources the server writes itself.
    pub fn date_index(&self, param: &str, text: &str) -> Option<DateIndex> {
        crate::temporal::parse_range(text, &self.time_zone).map(|range| DateIndex {
            param: param.to_owned(),
            low: range.low,
            high: range.high,
        })
    }

    /// `_include` values a type supports: each of its reference parameters.
    pub fn includes(&self, resource_type: ResourceType) -> Vec<String> {
        self.params(resource_type)
            .iter()
            .filter(|p| p.kind == ParamType::Reference)
            .map(|p| format!("{resource_type}:{}", p.code))
            .collect()
    }

    /// `_revinclude` values a type supports: reference parameters of served types that may
    /// point at it.
    pub fn revincludes(&self, resource_type: ResourceType) -> Vec<String> {
        let mut out = Vec::new();
        for source in ResourceType::ALL {
            for param in self.params(source) {
                if param.kind == ParamType::Reference && param.targets.iter().any(|t| t == resource_type.as_str()) {
                    out.push(format!("{source}:{}", param.code));
                }
            }
        }
        out
    }
}

fn fingerprint(params: &HashMap<ResourceType, Vec<SearchParam>>, time_zone: &str) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |text: &str| {
        for byte in text.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    feed(CORE_PACKAGE);
    feed(&INDEX_FORMAT.to_string());
    feed(time_zone);
    for resource_type in ResourceType::ALL {
        for param in params.get(&resource_type).into_iter().flatten() {
            feed(resource_type.as_str());
            feed(&param.code);
            feed(param.kind.code());
            feed(&param.expression_text);
        }
    }
    format!("{CORE_PACKAGE}/{INDEX_FORMAT}/{hash:016x}")
}

/// The FHIR package cache Termin looks in after the configured package directories:
/// `$TERMIN_FHIR_PACKAGES`, else `$HOME/.fhir/packages` (where `scripts/fhir-packages` installs).
pub fn default_package_cache() -> Option<PathBuf> {
    match std::env::var_os("TERMIN_FHIR_PACKAGES") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".fhir").join("packages")),
    }
}

/// The R5 core package's search parameters from the default package cache with the default
/// time zone, loaded once: for tests and tools. The server loads its own at start-up and
/// passes them to the domain, which hands them to whoever parses searches.
pub fn registry() -> &'static SearchParameters {
    static LOADED: OnceLock<SearchParameters> = OnceLock::new();
    LOADED.get_or_init(|| {
        let dirs: Vec<PathBuf> = default_package_cache().into_iter().collect();
        SearchParameters::load(&dirs, DEFAULT_TIME_ZONE).unwrap_or_else(|e| panic!("search registry: {e}"))
    })
}

#[cfg(test)]
mod tests;

/// The element definitions of the R5 types the served types reach (see
/// [`SearchParameters::element_types`]).
#[derive(Clone, Copy)]
pub struct ElementTypes<'a>(&'a ElementModel);

impl ElementTypes<'_> {
    /// The elements of `parent` marked isSummary (choice elements as `name[x]`).
    pub fn summary(&self, parent: &str) -> &[String] {
        self.0.summary_elements(parent)
    }

    /// The elements of `parent` with min ≥ 1.
    pub fn mandatory(&self, parent: &str) -> &[String] {
        self.0.mandatory_elements(parent)
    }

    /// The type of `parent`'s element `name` (a data type, or a backbone element's path);
    /// `None` for choice elements and unknown names.
    pub fn child_type(&self, parent: &str, name: &str) -> Option<&str> {
        termin_fhirpath::TypeModel::child_type(self.0, parent, name)
    }

    /// Whether `parent`'s definition is loaded.
    pub fn knows(&self, parent: &str) -> bool {
        self.0.knows(parent)
    }
}
