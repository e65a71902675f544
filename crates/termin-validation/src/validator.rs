//! The validator: which profile each resource type must conform to, the canonical aliases
//! the IG material uses, and the entry points.

use crate::definitions::{CORE_BASE, Definitions};
use crate::structure::Kind;
use crate::path::Path;
use crate::walk::{MAX_ISSUES, Run, Stop};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use termin_fhir::{Issue, IssueCode, OperationOutcome, ResourceType};

/// Canonical base of the HL7 AT Core R5 profiles.
pub const AT_CORE_BASE: &str = "http://hl7.at/fhir/HL7ATCoreProfiles/5.0.0/StructureDefinition/";
/// Canonical base of the AT Scheduling profiles in the compiled package.
pub const AT_SCHEDULING_BASE: &str = "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/";
/// The older base the IG's XML examples use for the same AT Scheduling profiles; accepted in
/// `meta.profile` and in configuration as an alias of [`AT_SCHEDULING_BASE`].
pub const AT_SCHEDULING_LEGACY_BASE: &str = "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/";

/// The profiles enforced by default, where their package is loaded. AT Core has no Location
/// profile, and RelatedPerson has no AT profile: those types are checked against R5 only.
const DEFAULT_PROFILES: [(ResourceType, &str, &str); 8] = [
    (ResourceType::Patient, AT_CORE_BASE, "at-core-patient"),
    (ResourceType::Practitioner, AT_CORE_BASE, "at-core-practitioner"),
    (ResourceType::PractitionerRole, AT_CORE_BASE, "at-core-practitionerRole"),
    (ResourceType::Organization, AT_CORE_BASE, "at-core-organization"),
    (ResourceType::Appointment, AT_SCHEDULING_BASE, "at-scheduling-appointment"),
    (ResourceType::Slot, AT_SCHEDULING_BASE, "at-scheduling-slot"),
    (ResourceType::Schedule, AT_SCHEDULING_BASE, "at-scheduling-schedule"),
    (ResourceType::HealthcareService, AT_SCHEDULING_BASE, "at-scheduling-healthcareservice"),
];

/// The default enforcement: the AT profile of each type whose profile is loaded.
pub fn default_profiles(definitions: &Definitions) -> BTreeMap<ResourceType, String> {
    DEFAULT_PROFILES
        .iter()
        .map(|(resource_type, base, id)| (*resource_type, format!("{base}{id}")))
        .filter(|(_, url)| definitions.has_structure(url))
        .collect()
}

/// A profile URL in its canonical spelling: the legacy AT Scheduling base becomes the
/// package's, and a `|version` is dropped.
pub fn canonical(url: &str) -> Cow<'_, str> {
    let url = crate::package::unversioned(url);
    match url.strip_prefix(AT_SCHEDULING_LEGACY_BASE) {
        Some(id) => Cow::Owned(format!("{AT_SCHEDULING_BASE}{id}")),
        None => Cow::Borrowed(url),
    }
}

/// How long one validation may take before it stops and rejects the resource. Resources of
/// the served types validate in milliseconds; only pathological ones (hundreds of thousands of
/// elements) come near it.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(5);

pub struct Validator {
    /// Shared with format conversion (FHIR XML), which lays resources out by the same definitions.
    definitions: Arc<Definitions>,
    enforced: BTreeMap<ResourceType, String>,
    time_limit: Duration,
}

impl Validator {
    /// A validator enforcing `enforced` (type → profile URL). Each profile must be loaded and
    /// constrain its type. Returns the problems met while compiling the definitions in use
    /// (such as constraints that cannot be evaluated), for the start-up log.
    pub fn new(
        definitions: Definitions,
        enforced: BTreeMap<ResourceType, String>,
    ) -> Result<(Validator, Vec<String>), String> {
        let mut canonical_profiles = BTreeMap::new();
        let mut problems = Vec::new();
        for (resource_type, url) in enforced {
            let url = canonical(&url).into_owned();
            match definitions.structure(&url) {
                None => return Err(format!("the profile {url} for {resource_type} is in no loaded package")),
                Some(Err(e)) => return Err(format!("the profile {url} for {resource_type} cannot be used: {e}")),
                Some(Ok(structure)) if structure.type_name != resource_type.as_str() => {
                    return Err(format!(
                        "the profile {url} constrains {}, not {resource_type}",
                        structure.type_name
                    ));
                }
                Some(Ok(_)) => {}
            }
            problems.extend(definitions.preload(&url));
            canonical_profiles.insert(resource_type, url);
        }
        for resource_type in ResourceType::ALL {
            problems.extend(definitions.preload(&format!("{CORE_BASE}{resource_type}")));
        }
        problems.sort();
        problems.dedup();
        Ok((
            Validator {
                definitions: Arc::new(definitions),
                enforced: canonical_profiles,
                time_limit: DEFAULT_TIME_LIMIT,
            },
            problems,
        ))
    }

    /// Stops each validation after `limit`; the resource is then rejected (`too-costly`).
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    pub fn definitions(&self) -> &Definitions {
        &self.definitions
    }

    /// The definitions, to share with other users of the same packages (FHIR XML).
    pub fn shared_definitions(&self) -> Arc<Definitions> {
        self.definitions.clone()
    }

    /// The profile every resource of this type must conform to, if any.
    pub fn enforced_profile(&self, resource_type: ResourceType) -> Option<&str> {
        self.enforced.get(&resource_type).map(String::as_str)
    }

    /// Validates a resource against R5, the profile enforced for its type, and every loaded
    /// profile it claims in `meta.profile` (a claimed profile that is not loaded is a warning).
    pub fn validate(&self, resource: &Value) -> OperationOutcome {
        self.run(resource, None)
    }

    /// As [`Validator::validate`], and also against `profile` (`$validate?profile=`).
    /// `Err` when that profile is not loaded.
    pub fn validate_against(&self, resource: &Value, profile: &str) -> Result<OperationOutcome, String> {
        let url = canonical(profile);
        if !self.definitions.has_structure(&url) {
            return Err(format!("The profile {profile} is not known to this server"));
        }
        Ok(self.run(resource, Some(&url)))
    }

    fn run(&self, resource: &Value, requested: Option<&str>) -> OperationOutcome {
        let mut run = Run::new(&self.definitions, resource);
        run.deadline = Some(Instant::now() + self.time_limit);
        let Some(type_name) = resource.get("resourceType").and_then(Value::as_str) else {
            run.error(IssueCode::Structure, "resourceType", "The resource has no resourceType".into());
            return OperationOutcome::new(run.issues);
        };
        let Some(base) = self.definitions.base(type_name).filter(|s| s.kind == Kind::Resource && !s.is_abstract) else {
            run.error(
                IssueCode::Structure,
                "resourceType",
                format!("{type_name:?} is not a FHIR R5 resource type"),
            );
            return OperationOutcome::new(run.issues);
        };
        let mut profiles: Vec<Cow<str>> = Vec::new();
        if let Some(enforced) = type_name.parse::<ResourceType>().ok().and_then(|t| self.enforced_profile(t)) {
            profiles.push(Cow::Borrowed(enforced));
        }
        profiles.extend(requested.map(Cow::Borrowed));
        let claimed = resource
            .pointer("/meta/profile")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for (index, claim) in claimed.enumerate() {
            let url = canonical(claim);
            if self.definitions.has_structure(&url) {
                profiles.push(url);
            } else {
                run.warning(
                    IssueCode::NotSupported,
                    format!("{type_name}.meta.profile[{index}]"),
                    format!("The profile {claim} is not known to this server; the resource is not checked against it"),
                );
            }
        }
        let mut seen = HashSet::new();
        profiles.retain(|p| seen.insert(p.to_string()));
        // A profile's snapshot includes every rule of the base definition.
        if profiles.is_empty() {
            run.resource(base, resource, &Path::root(type_name));
        }
        for profile in &profiles {
            match self.definitions.structure(profile) {
                Some(Ok(structure)) if structure.type_name == type_name => run.resource(structure, resource, &Path::root(type_name)),
                Some(Ok(structure)) => run.error(
                    IssueCode::Structure,
                    type_name,
                    format!("The profile {profile} constrains {}, not {type_name}", structure.type_name),
                ),
                Some(Err(e)) => run.warning(IssueCode::NotSupported, type_name, format!("Profile {profile} cannot be used: {e}")),
                None => {}
            }
        }
        let mut issues = deduplicated(run.issues);
        match run.stopped {
            None => {}
            Some(Stop::EnoughErrors) => issues.push(Issue::information(format!(
                "Validation stopped after the first {MAX_ISSUES} errors; correct these and validate again"
            ))),
            Some(Stop::OutOfTime) => issues.push(
                Issue::error(
                    IssueCode::TooCostly,
                    format!(
                        "Validation took longer than the limit of {} s and was stopped; the resource is too \
                         large or complex to accept",
                        self.time_limit.as_secs_f64()
                    ),
                )
                .at(type_name),
            ),
        }
        OperationOutcome::new(issues)
    }
}

/// Issues in walk order, each reported once (an element walked along its profile and its
/// type's definition meets the same rule twice).
fn deduplicated(issues: Vec<Issue>) -> Vec<Issue> {
    let mut seen = HashSet::new();
    issues
        .into_iter()
        .filter(|issue| seen.insert((issue.severity.as_str(), issue.code.as_str(), issue.diagnostics.clone(), issue.expression.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_scheduling_base_is_an_alias() {
        assert_eq!(
            canonical("http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/at-scheduling-slot"),
            "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-slot"
        );
        assert_eq!(canonical("http://hl7.org/fhir/StructureDefinition/Patient|5.0.0"), "http://hl7.org/fhir/StructureDefinition/Patient");
    }
}
