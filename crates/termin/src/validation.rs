//! Validation at start-up: loads the FHIR packages, builds the validator with the configured
//! profile enforcement, and hands it to the domain through its `ResourceValidator` port.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use termin_domain::ResourceValidator;
use termin_fhir::{OperationOutcome, ResourceType};
use termin_validation::{Definitions, Validator, default_profiles};

/// The package-driven validator behind the domain's port.
struct PackageValidator(Validator);

impl ResourceValidator for PackageValidator {
    fn validate(&self, resource: &Value) -> OperationOutcome {
        self.0.validate(resource)
    }

    fn validate_against(&self, resource: &Value, profile: &str) -> Result<OperationOutcome, String> {
        self.0.validate_against(resource, profile)
    }

    fn enforced_profile(&self, resource_type: ResourceType) -> Option<&str> {
        self.0.enforced_profile(resource_type)
    }
}

/// Which packages validation loads besides the R5 core package.
pub enum Packages<'a> {
    /// The AT packages compiled into `termin`, and those in these directories.
    Shipped(&'a [PathBuf]),
    /// Validation is switched off.
    Off,
}

/// The validator over `packages`, or `None` when validation is off.
pub fn load(
    packages: Packages,
    enforced_profiles: &[(ResourceType, Option<String>)],
) -> Result<Option<Arc<dyn ResourceValidator>>, String> {
    let (embedded, dirs) = match packages {
        Packages::Shipped(dirs) => (crate::packages::embedded(), dirs),
        Packages::Off => {
            tracing::info!("validation is off (--validation off)");
            return Ok(None);
        }
    };
    let started = std::time::Instant::now();
    let cache = termin_search::default_package_cache();
    let definitions = Definitions::load_with(&embedded, dirs, cache.as_deref()).map_err(|e| e.to_string())?;
    let mut profiles = default_profiles(&definitions);
    for (resource_type, profile) in enforced_profiles {
        match profile {
            Some(url) => profiles.insert(*resource_type, url.clone()),
            None => profiles.remove(resource_type),
        };
    }
    let (validator, problems) = Validator::new(definitions, profiles).map_err(|e| format!("validation: {e}"))?;
    for problem in problems {
        tracing::warn!(%problem, "a definition in use is only partly enforced");
    }
    let packages: Vec<String> = validator
        .definitions()
        .packages()
        .iter()
        .map(|p| match &p.path {
            Some(path) => format!("{} ({})", p.id, path.display()),
            None => format!("{} (built in)", p.id),
        })
        .collect();
    let enforced: Vec<String> = ResourceType::ALL
        .iter()
        .map(|t| format!("{t}={}", validator.enforced_profile(*t).unwrap_or("R5")))
        .collect();
    tracing::info!(
        packages = ?packages,
        enforced = ?enforced,
        millis = started.elapsed().as_millis() as u64,
        "loaded FHIR packages for validation"
    );
    // FHIR XML lays resources out by the same definitions (their base types): loaded once.
    termin_xml::install(termin_xml::XmlConverter::new(validator.shared_definitions()));
    Ok(Some(Arc::new(PackageValidator(validator))))
}
