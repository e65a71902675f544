//! The resource types Termin serves and resource-level helpers.

use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// The resource types Termin stores and serves over REST.
///
/// Parameters, Bundle and OperationOutcome only travel in requests and responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Appointment,
    AuditEvent,
    HealthcareService,
    Location,
    Organization,
    Patient,
    Practitioner,
    PractitionerRole,
    RelatedPerson,
    Schedule,
    Slot,
    Subscription,
}

impl ResourceType {
    /// Every served type, in alphabetical order (the order of the CapabilityStatement).
    pub const ALL: [ResourceType; 12] = [
        ResourceType::Appointment,
        ResourceType::AuditEvent,
        ResourceType::HealthcareService,
        ResourceType::Location,
        ResourceType::Organization,
        ResourceType::Patient,
        ResourceType::Practitioner,
        ResourceType::PractitionerRole,
        ResourceType::RelatedPerson,
        ResourceType::Schedule,
        ResourceType::Slot,
        ResourceType::Subscription,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Appointment => "Appointment",
            ResourceType::AuditEvent => "AuditEvent",
            ResourceType::HealthcareService => "HealthcareService",
            ResourceType::Location => "Location",
            ResourceType::Organization => "Organization",
            ResourceType::Patient => "Patient",
            ResourceType::Practitioner => "Practitioner",
            ResourceType::PractitionerRole => "PractitionerRole",
            ResourceType::RelatedPerson => "RelatedPerson",
            ResourceType::Schedule => "Schedule",
            ResourceType::Slot => "Slot",
            ResourceType::Subscription => "Subscription",
        }
    }

    /// Comma-separated list of the served types, for error messages.
    pub fn supported_list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedType(pub String);

impl FromStr for ResourceType {
    type Err = UnsupportedType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnsupportedType(s.to_owned()))
    }
}

/// FHIR `id`: 1 to 64 characters from `[A-Za-z0-9\-\.]`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Rebuilds a resource object so that `resourceType`, `id` and `meta` come first,
/// followed by the remaining elements in their received order.
pub fn with_identity(resource: Map<String, Value>, id: &str, meta: Map<String, Value>) -> Value {
    let mut ordered = Map::with_capacity(resource.len() + 2);
    let mut rest = resource;
    if let Some(rt) = rest.shift_remove("resourceType") {
        ordered.insert("resourceType".into(), rt);
    }
    rest.shift_remove("id");
    rest.shift_remove("meta");
    ordered.insert("id".into(), Value::String(id.to_owned()));
    ordered.insert("meta".into(), Value::Object(meta));
    ordered.extend(rest);
    Value::Object(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_supported_types_only() {
        assert_eq!("Slot".parse::<ResourceType>(), Ok(ResourceType::Slot));
        assert!("Observation".parse::<ResourceType>().is_err());
        assert!("slot".parse::<ResourceType>().is_err());
        assert!(ResourceType::supported_list().contains("PractitionerRole"));
    }

    #[test]
    fn validates_ids() {
        assert!(is_valid_id("HL7ATCorePatientExample01"));
        assert!(is_valid_id("a.b-c"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }

    #[test]
    fn identity_elements_come_first() {
        let body = json!({"name": [{"family": "Huber"}], "resourceType": "Patient", "id": "old"});
        let Value::Object(map) = body else { unreachable!() };
        let mut meta = Map::new();
        meta.insert("versionId".into(), json!("1"));
        let out = with_identity(map, "new", meta);
        let keys: Vec<_> = out.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["resourceType", "id", "meta", "name"]);
        assert_eq!(out["id"], "new");
    }
}
