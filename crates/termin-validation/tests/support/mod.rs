//! Where the test packages are, and validators built from them once per test binary.
//!
//! The AT packages come from the repository's `packages/`; the R5 core and examples packages from the FHIR package
//! cache (`TERMIN_FHIR_PACKAGES`, by default `$HOME/.fhir/packages`), where
//! `scripts/fhir-packages` installs them. A missing package fails the test with that hint.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use termin_fhir::{OperationOutcome, Severity};
use termin_validation::{Definitions, Validator, default_profiles};

pub const EXAMPLES_PACKAGE: &str = "hl7.fhir.r5.examples#5.0.0";

/// The resource types whose examples the suites use.
pub const EXAMPLE_TYPES: [&str; 9] = [
    "Appointment",
    "Slot",
    "Schedule",
    "Patient",
    "HealthcareService",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
];

/// The repository's AT packages (AT Core, AT Scheduling) in package-cache layout.
pub fn at_packages() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages")
}

pub fn package_cache() -> PathBuf {
    let cache = match std::env::var_os("TERMIN_FHIR_PACKAGES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".fhir/packages"),
    };
    for package in [termin_validation::R5_CORE, EXAMPLES_PACKAGE] {
        assert!(
            cache.join(package).join("package/package.json").is_file(),
            "the FHIR package {package} is not in {}: run scripts/fhir-packages to install it",
            cache.display()
        );
    }
    cache
}

fn definitions() -> Definitions {
    Definitions::load(&[at_packages()], Some(&package_cache())).unwrap_or_else(|e| panic!("{e}"))
}

/// Enforces the AT profiles (the server's default).
pub fn at_validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let definitions = definitions();
        let profiles = default_profiles(&definitions);
        Validator::new(definitions, profiles).unwrap_or_else(|e| panic!("{e}")).0
    })
}

/// Enforces nothing beyond R5 (and the profiles a resource claims).
pub fn r5_validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| Validator::new(definitions(), BTreeMap::new()).unwrap_or_else(|e| panic!("{e}")).0)
}

fn json_files(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|file| {
            let name = file.file_name()?.to_str()?.to_owned();
            let type_name = name.split('-').next()?;
            if !EXAMPLE_TYPES.contains(&type_name) {
                return None;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            Some((name, serde_json::from_str(&text).unwrap()))
        })
        .collect()
}

/// The example instances of [`EXAMPLE_TYPES`] in the AT packages: (package/file, resource).
pub fn at_examples() -> Vec<(String, Value)> {
    let mut examples = Vec::new();
    let root = at_packages();
    let mut packages: Vec<PathBuf> =
        std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    packages.sort();
    for package in packages {
        let name = package.file_name().unwrap().to_string_lossy().into_owned();
        for (file, resource) in json_files(&package.join("package")) {
            examples.push((format!("{name}/{file}"), resource));
        }
    }
    assert!(!examples.is_empty(), "no AT examples under {}", root.display());
    examples
}

/// The example instances of [`EXAMPLE_TYPES`] in the R5 examples package.
pub fn r5_examples() -> Vec<(String, Value)> {
    let examples = json_files(&package_cache().join(EXAMPLES_PACKAGE).join("package"));
    assert!(!examples.is_empty(), "no examples in {EXAMPLES_PACKAGE}");
    examples
}

pub fn errors(outcome: &OperationOutcome) -> Vec<String> {
    outcome
        .issues
        .iter()
        .filter(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        .map(|i| format!("{} {} {}", i.code.as_str(), i.expression.join(","), i.diagnostics))
        .collect()
}
