//! The port through which the domain has resources checked against their profiles. The
//! binary supplies the implementation (StructureDefinition-driven, `termin-validation`); the
//! domain only decides when to ask and what to do with the answer.

use crate::DomainError;
use serde_json::{Map, Value};
use termin_fhir::{Issue, OperationOutcome, ResourceType, Severity};

pub trait ResourceValidator: Send + Sync {
    /// Checks a resource against FHIR R5, the profile enforced for its type and the profiles
    /// it claims in `meta.profile`. Errors reject it; warnings do not.
    fn validate(&self, resource: &Value) -> OperationOutcome;

    /// As [`ResourceValidator::validate`], and against `profile` too (`$validate?profile=`).
    /// `Err` says the profile is not known.
    fn validate_against(&self, resource: &Value, profile: &str) -> Result<OperationOutcome, String>;

    /// The canonical URL of the profile every resource of this type must conform to.
    fn enforced_profile(&self, resource_type: ResourceType) -> Option<&str>;
}

/// Validates an incoming resource: errors become [`DomainError::NotConformant`]; otherwise
/// the resource comes back carrying the enforced profile in `meta.profile`, with the warnings.
pub(crate) fn conform(
    validator: &dyn ResourceValidator,
    resource_type: ResourceType,
    body: Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<Issue>), DomainError> {
    let resource = Value::Object(body);
    let outcome = validator.validate(&resource);
    if outcome.has_errors() {
        return Err(DomainError::NotConformant(outcome));
    }
    let Value::Object(mut body) = resource else {
        unreachable!("built from an object above")
    };
    if let Some(profile) = validator.enforced_profile(resource_type) {
        claim_profile(&mut body, profile);
    }
    let warnings = outcome
        .issues
        .into_iter()
        .filter(|issue| issue.severity == Severity::Warning)
        .collect();
    Ok((body, warnings))
}

/// Adds `profile` to `meta.profile` unless it is there; the stored resource then says which
/// profile it conforms to. A `meta` that is not an object is left for the write to reject.
fn claim_profile(body: &mut Map<String, Value>, profile: &str) {
    let meta = body.entry("meta").or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else {
        return;
    };
    let profiles = meta.entry("profile").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(profiles) = profiles
        && !profiles.iter().any(|p| p.as_str() == Some(profile))
    {
        profiles.push(Value::String(profile.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_the_enforced_profile_once() {
        let mut body = json!({"resourceType": "Slot", "meta": {"source": "x"}}).as_object().unwrap().clone();
        claim_profile(&mut body, "http://p/slot");
        claim_profile(&mut body, "http://p/slot");
        assert_eq!(body["meta"], json!({"source": "x", "profile": ["http://p/slot"]}));
        let mut bare = json!({"resourceType": "Slot"}).as_object().unwrap().clone();
        claim_profile(&mut bare, "http://p/slot");
        assert_eq!(bare["meta"]["profile"], json!(["http://p/slot"]));
    }
}
