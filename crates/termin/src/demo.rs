//! `--demo`, first part: load the example instances of the FHIR packages (the AT Core and AT
//! Scheduling IG examples compiled into `termin`, and those in `--packages`) so the API can be
//! tried at once. Loading is idempotent: an example that is
//! already stored unchanged creates no new version.

use serde_json::Value;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use termin_domain::ResourceService;
use termin_fhir::ResourceType;
use termin_domain::Caller;

const LOAD_ORDER: [ResourceType; 10] = [
    ResourceType::Organization,
    ResourceType::Location,
    ResourceType::Practitioner,
    ResourceType::HealthcareService,
    ResourceType::PractitionerRole,
    ResourceType::Patient,
    ResourceType::RelatedPerson,
    ResourceType::Schedule,
    ResourceType::Slot,
    ResourceType::Appointment,
];

pub async fn load_examples(service: &ResourceService, package_dirs: &[PathBuf]) -> Result<(), String> {
    let ctx = Caller::system("demo-load");
    let mut loaded = 0usize;
    let mut examples = Vec::new();
    let embedded = crate::packages::embedded().into_iter().flat_map(|package| {
        let id = package.id;
        package
            .files
            .into_iter()
            .filter(|(name, _)| !is_package_manifest(Path::new(name)))
            .map(move |(name, bytes)| (format!("{id}/package/{name}"), Cow::Borrowed(bytes)))
    });
    let mut on_disk = Vec::new();
    for file in example_files(package_dirs)? {
        let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        on_disk.push((file.display().to_string(), Cow::Owned(text)));
    }
    for (file, text) in embedded.chain(on_disk) {
        let Ok(Value::Object(resource)) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        let Some(resource_type) = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<ResourceType>().ok())
        else {
            continue;
        };
        let Some(id) = resource.get("id").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        examples.push((resource_type, id, resource, file));
    }
    // Referenced resources first, so that an example Appointment finds its Slot to book.
    examples.sort_by_key(|(resource_type, ..)| LOAD_ORDER.iter().position(|t| t == resource_type));
    for (resource_type, id, resource, file) in examples {
        // Examples already present (possibly changed since, e.g. a slot booked) stay as they are.
        if service.read(&ctx, resource_type, &id).await.is_ok() {
            continue;
        }
        service
            .update(&ctx, resource_type, &id, resource, None)
            .await
            .map_err(|e| format!("loading {file}: {e:?}"))?;
        loaded += 1;
    }
    tracing::info!(loaded, "loaded demo resources");
    Ok(())
}

/// JSON files in `<dir>/<package>/package/`, sorted for a deterministic load order.
fn example_files(package_dirs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for dir in package_dirs {
        let packages = std::fs::read_dir(dir).map_err(|e| format!("package directory {}: {e}", dir.display()))?;
        for package in packages.flatten() {
            let content = package.path().join("package");
            let Ok(entries) = std::fs::read_dir(&content) else {
                continue;
            };
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json") && !is_package_manifest(p)),
            );
        }
    }
    files.sort();
    Ok(files)
}

fn is_package_manifest(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "package.json" || n == ".index.json")
}
