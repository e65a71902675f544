//! Every generated resource of the tiny and small datasets passes the validator the server
//! builds at start-up, with the AT Core and AT Scheduling profiles enforced by default.

use jiff::civil::date;
use serde_json::Value;
use std::path::{Path, PathBuf};
use termin_seed::{Scale, SeedOptions, generate};
use termin_validation::{Definitions, Validator, default_profiles};


/// `TERMIN_FHIR_PACKAGES`, else `$HOME/.fhir/packages`: where the R5 core package is installed.
fn package_cache() -> Option<PathBuf> {
    match std::env::var_os("TERMIN_FHIR_PACKAGES") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".fhir").join("packages"))
        }
    }
}

/// The validator with the default profiles over the repository's AT packages (`packages/`).
fn validator() -> Validator {
    let packages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages");
    let definitions =
        Definitions::load(&[packages], package_cache().as_deref()).expect("the FHIR packages load");
    let profiles = default_profiles(&definitions);
    for profile in ["at-core-patient", "at-scheduling-slot"] {
        assert!(
            profiles.values().any(|url| url.ends_with(profile)),
            "{profile} is enforced: {profiles:?}"
        );
    }
    let (validator, _partly_enforced) =
        Validator::new(definitions, profiles).expect("the validator builds");
    validator
}

#[test]
fn tiny_and_small_datasets_conform_to_the_enforced_profiles() {
    let validator = validator();
    for scale in [Scale::Tiny, Scale::Small] {
        let options = SeedOptions::new(scale, 2027, date(2027, 3, 22));
        let (mut checked, mut failures) = (0, Vec::new());
        for resource in generate(&options) {
            let resource = Value::Object(resource);
            let outcome = validator.validate(&resource);
            checked += 1;
            if outcome.has_errors() && failures.len() < 10 {
                failures.push(format!(
                    "{}/{}: {}",
                    resource["resourceType"],
                    resource["id"],
                    outcome.to_json()
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{scale}: invalid resources:\n{}",
            failures.join("\n")
        );
        eprintln!("{scale}: {checked} resources valid");
    }
}
