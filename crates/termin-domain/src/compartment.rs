//! The patient compartment: the Patient, Appointments, RelatedPersons and AuditEvents of one
//! patient, and the Subscriptions filtered on that patient (their endpoints and header secrets
//! are no other patient's business). A
//! token whose access to these types comes from `patient/` scopes alone reaches only its
//! `patient`'s (see [`RequestContext::patient_reach`]): reads outside answer 404 (existence is
//! not revealed), a request naming another patient answers 403, searches and type histories
//! are narrowed to the compartment, and writes must stay inside it.

use crate::DomainError;
use crate::model::{parse_object, reference_id};
use serde_json::{Map, Value};
use termin_fhir::ResourceType;
use termin_store::{
    COMPARTMENT_TYPES, Condition, PatientReach, Permission, ReferenceMatch, RequestContext, ResourceVersion, StringMatch,
};

/// The patient ids a resource of a compartment type refers to as its patient (a Patient is
/// its own, by `id`, which a body being created may not carry yet).
pub(crate) fn patients_of(resource_type: ResourceType, id: &str, body: &Map<String, Value>) -> Vec<String> {
    let reference = |value: Option<&Value>| {
        value
            .and_then(|r| r.get("reference"))
            .and_then(Value::as_str)
            .and_then(|r| reference_id(r, ResourceType::Patient))
    };
    match resource_type {
        ResourceType::Patient => vec![id.to_owned()],
        ResourceType::Appointment => {
            let participants = body.get("participant").and_then(Value::as_array).into_iter().flatten();
            reference(body.get("subject")).into_iter().chain(participants.filter_map(|p| reference(p.get("actor")))).collect()
        }
        ResourceType::RelatedPerson => reference(body.get("patient")).into_iter().collect(),
        ResourceType::AuditEvent => {
            let entities = body.get("entity").and_then(Value::as_array).into_iter().flatten();
            reference(body.get("patient")).into_iter().chain(entities.filter_map(|e| reference(e.get("what")))).collect()
        }
        ResourceType::Subscription => crate::subscriptions::filtered_patients(body),
        _ => Vec::new(),
    }
}

/// Whether the resource is in `patient`'s compartment.
pub(crate) fn belongs(resource_type: ResourceType, id: &str, body: &Map<String, Value>, patient: &str) -> bool {
    patients_of(resource_type, id, body).iter().any(|p| p == patient)
}

fn without_context() -> DomainError {
    DomainError::forbidden(
        "The access token has only patient/ scopes for this type but names no patient (no patient claim), \
         so it reaches no patient's data",
    )
}

pub(crate) fn other_patient(resource_type: ResourceType, patient: &str) -> DomainError {
    DomainError::forbidden(format!(
        "This access token may reach only the {resource_type} resources of Patient/{patient} (its patient compartment)"
    ))
}

/// The patient whose compartment limits `permission` on `resource_type`: `Ok(None)` when the
/// caller reaches every patient's, 403 for `patient/` scopes without a patient.
pub(crate) fn confined_to(
    ctx: &RequestContext,
    resource_type: ResourceType,
    permission: Permission,
) -> Result<Option<&str>, DomainError> {
    match ctx.patient_reach(resource_type, permission) {
        PatientReach::All => Ok(None),
        PatientReach::Only(patient) => Ok(Some(patient)),
        PatientReach::None => Err(without_context()),
    }
}

/// Whether the caller may see `version` (a search's `_include`/`_revinclude` result).
pub(crate) fn may_see(ctx: &RequestContext, version: &ResourceVersion) -> bool {
    match ctx.patient_reach(version.resource_type, Permission::Read) {
        PatientReach::All => true,
        PatientReach::None => false,
        PatientReach::Only(patient) => version
            .body
            .as_deref()
            .and_then(parse_object)
            .is_some_and(|body| belongs(version.resource_type, &version.id, &body, patient)),
    }
}

/// The search condition of `patient`'s compartment for `resource_type` (a compartment type).
pub(crate) fn condition(resource_type: ResourceType, patient: &str) -> Condition {
    let refers = |param: &str| Condition::ReferenceAny {
        param: param.to_owned(),
        alternatives: vec![ReferenceMatch::Local {
            target_type: Some(ResourceType::Patient.as_str().to_owned()),
            id: patient.to_owned(),
            version: None,
        }],
    };
    match resource_type {
        ResourceType::Appointment => Condition::Any(vec![refers("subject"), refers("actor")]),
        ResourceType::RelatedPerson | ResourceType::AuditEvent => refers("patient"),
        // R5's `filter-value` (every `filterBy.value`), as a patient's client writes its filter.
        ResourceType::Subscription => Condition::StringAny {
            param: "filter-value".to_owned(),
            alternatives: vec![StringMatch::Exact(format!("Patient/{patient}"))],
        },
        _ => Condition::IdIn(vec![patient.to_owned()]),
    }
}

/// Both conditions hold (the search plan has no conjunction inside a chain or `_has`).
fn both(a: Condition, b: Condition) -> Condition {
    Condition::Not(Box::new(Condition::Any(vec![Condition::Not(Box::new(a)), Condition::Not(Box::new(b))])))
}

/// Narrows chains and `_has` that reach compartment types to what the caller may search there
/// (its patient's compartment; for staff, their organisations' Appointments), so that, say, a
/// search of Slots cannot probe which patient booked them.
pub(crate) fn confine_reach(ctx: &RequestContext, searched: Condition) -> Result<Condition, DomainError> {
    let confine_to = |reached: ResourceType, inner: Condition| -> Result<Condition, DomainError> {
        let mut inner = confine_reach(ctx, inner)?;
        if let Some(patient) = confined_to(ctx, reached, Permission::Search)? {
            inner = both(inner, condition(reached, patient));
        }
        // Staff reach only their organisations' Appointments and AuditEvents (the directory
        // types are public).
        if crate::organisation::READ_CONFINED.contains(&reached)
            && let Some(confinement) = crate::organisation::confinement(ctx, reached, Permission::Search)
        {
            inner = both(inner, confinement);
        }
        Ok(inner)
    };
    Ok(match searched {
        Condition::Chain { param, target_type, condition } => Condition::Chain {
            param,
            condition: Box::new(confine_to(target_type, *condition)?),
            target_type,
        },
        Condition::ReferencedBy { source_type, param, condition } => Condition::ReferencedBy {
            param,
            condition: Box::new(confine_to(source_type, *condition)?),
            source_type,
        },
        Condition::Not(inner) => Condition::Not(Box::new(confine_reach(ctx, *inner)?)),
        Condition::Any(alternatives) => {
            Condition::Any(alternatives.into_iter().map(|c| confine_reach(ctx, c)).collect::<Result<_, _>>()?)
        }
        other => other,
    })
}

/// 403 when a search's own conditions name a patient other than `patient` (`Patient?_id=`,
/// `Appointment?patient=`, `actor=Patient/..`, `subject=`, `RelatedPerson?patient=`).
pub(crate) fn check_named_patients(
    resource_type: ResourceType,
    conditions: &[Condition],
    patient: &str,
) -> Result<(), DomainError> {
    let names_other = |condition: &Condition| match condition {
        Condition::IdIn(ids) => resource_type == ResourceType::Patient && ids.iter().any(|id| id != patient),
        Condition::ReferenceAny { param, alternatives } => {
            let patient_param = matches!(
                (resource_type, param.as_str()),
                (ResourceType::Appointment, "patient" | "subject" | "actor")
                    | (ResourceType::RelatedPerson | ResourceType::AuditEvent, "patient")
            );
            patient_param
                && alternatives.iter().any(|alternative| match alternative {
                    ReferenceMatch::Local { target_type, id, .. } => {
                        let to_patient = match target_type.as_deref() {
                            Some(target) => target == ResourceType::Patient.as_str(),
                            None => param == "patient",
                        };
                        to_patient && id != patient
                    }
                    _ => false,
                })
        }
        _ => false,
    };
    match conditions.iter().any(names_other) {
        true => Err(other_patient(resource_type, patient)),
        false => Ok(()),
    }
}

/// A write of a compartment type by a caller confined to a patient keeps to its compartment:
/// the resource it changes or deletes is in it, and the new content is in it and names no
/// other patient (an Appointment's subject and patient participants). Else 403.
pub(crate) fn check_write(
    ctx: &RequestContext,
    resource_type: ResourceType,
    id: &str,
    previous: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> Result<(), DomainError> {
    if !COMPARTMENT_TYPES.contains(&resource_type) {
        return Ok(());
    }
    let permission = crate::model::write_permission(previous, new);
    let Some(patient) = confined_to(ctx, resource_type, permission)? else {
        return Ok(());
    };
    let outside = previous.is_some_and(|p| !belongs(resource_type, id, p, patient));
    let foreign = new.is_some_and(|n| {
        let named = patients_of(resource_type, id, n);
        // A Subscription may concern no patient (slot availability); which topics need a
        // patient filter is `subscriptions::check_access`'s rule.
        (named.is_empty() && resource_type != ResourceType::Subscription) || named.iter().any(|p| p != patient)
    });
    match outside || foreign {
        true => Err(other_patient(resource_type, patient)),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use termin_store::{Scope, TokenPrincipal};

    fn patient_token(scopes: &str) -> RequestContext {
        let principal = TokenPrincipal {
            subject: "u1".into(),
            client_id: None,
            patient: Some("p1".into()),
            fhir_user: None,
        };
        RequestContext::anonymous("r").with_token(principal, Scope::parse_all(scopes))
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn appointments_belong_to_their_subject_and_patient_participants() {
        let appointment = object(json!({
            "resourceType": "Appointment",
            "subject": {"reference": "Patient/p1"},
            "participant": [{"actor": {"reference": "https://x.test/fhir/Patient/p2"}}, {"actor": {"reference": "Practitioner/d"}}],
        }));
        assert!(belongs(ResourceType::Appointment, "a", &appointment, "p1"));
        assert!(belongs(ResourceType::Appointment, "a", &appointment, "p2"));
        assert!(!belongs(ResourceType::Appointment, "a", &appointment, "d"));
        assert!(belongs(ResourceType::Patient, "p1", &Map::new(), "p1"));
        assert!(!belongs(ResourceType::RelatedPerson, "r", &object(json!({"patient": {"reference": "Patient/p2"}})), "p1"));
    }

    #[test]
    fn subscriptions_belong_to_the_patients_they_are_filtered_on() {
        let filtered = |filters: Value| object(json!({"resourceType": "Subscription", "filterBy": filters}));
        let own = filtered(json!([{"filterParameter": "patient", "value": "Patient/p1"}]));
        let by_actor = filtered(json!([{"filterParameter": "actor", "value": "https://x.test/fhir/Patient/p1"}]));
        let other = filtered(json!([{"filterParameter": "patient", "value": "Patient/p2"}]));
        let slots = filtered(json!([{"filterParameter": "schedule", "value": "Schedule/p1"}]));
        assert!(belongs(ResourceType::Subscription, "s", &own, "p1"));
        assert!(belongs(ResourceType::Subscription, "s", &by_actor, "p1"));
        assert!(!belongs(ResourceType::Subscription, "s", &other, "p1"));
        assert!(!belongs(ResourceType::Subscription, "s", &slots, "p1"));
        let ctx = patient_token("patient/Subscription.cruds");
        assert!(check_write(&ctx, ResourceType::Subscription, "s", None, Some(&slots)).is_ok());
        assert!(matches!(check_write(&ctx, ResourceType::Subscription, "s", None, Some(&other)), Err(DomainError::Forbidden(_))));
        assert!(matches!(check_write(&ctx, ResourceType::Subscription, "s", Some(&other), None), Err(DomainError::Forbidden(_))));
    }

    #[test]
    fn a_confined_write_stays_in_the_compartment() {
        let ctx = patient_token("patient/Appointment.cruds");
        let own = object(json!({"subject": {"reference": "Patient/p1"}, "participant": [{"actor": {"reference": "Patient/p1"}}]}));
        let shared = object(json!({"subject": {"reference": "Patient/p1"}, "participant": [{"actor": {"reference": "Patient/p2"}}]}));
        let other = object(json!({"subject": {"reference": "Patient/p2"}}));
        let nobody = object(json!({"status": "proposed"}));
        assert!(check_write(&ctx, ResourceType::Appointment, "a", None, Some(&own)).is_ok());
        assert!(check_write(&ctx, ResourceType::Appointment, "a", Some(&own), None).is_ok());
        for (previous, new) in [(None, Some(&shared)), (None, Some(&nobody)), (Some(&other), None), (Some(&other), Some(&own))] {
            assert!(matches!(check_write(&ctx, ResourceType::Appointment, "a", previous, new), Err(DomainError::Forbidden(_))));
        }
        let staff = patient_token("user/Appointment.cruds");
        assert!(check_write(&staff, ResourceType::Appointment, "a", Some(&other), Some(&shared)).is_ok());
        let patients = patient_token("patient/Patient.cruds");
        assert!(matches!(check_write(&patients, ResourceType::Patient, "p2", None, Some(&nobody)), Err(DomainError::Forbidden(_))));
        assert!(check_write(&patients, ResourceType::Patient, "p1", Some(&nobody), Some(&nobody)).is_ok());
    }

    #[test]
    fn searches_naming_another_patient_are_refused() {
        let refers = |param: &str, target: Option<&str>, id: &str| Condition::ReferenceAny {
            param: param.into(),
            alternatives: vec![ReferenceMatch::Local { target_type: target.map(str::to_owned), id: id.into(), version: None }],
        };
        let check = |t, c: Condition| check_named_patients(t, &[c], "p1").is_ok();
        assert!(check(ResourceType::Appointment, refers("patient", None, "p1")));
        assert!(!check(ResourceType::Appointment, refers("patient", None, "p2")));
        assert!(!check(ResourceType::Appointment, refers("actor", Some("Patient"), "p2")));
        assert!(check(ResourceType::Appointment, refers("actor", Some("Practitioner"), "d1")));
        assert!(check(ResourceType::Appointment, refers("actor", None, "d1")));
        assert!(!check(ResourceType::Patient, Condition::IdIn(vec!["p1".into(), "p2".into()])));
        assert!(check(ResourceType::Appointment, Condition::IdIn(vec!["a1".into()])));
        assert!(!check(ResourceType::RelatedPerson, refers("patient", None, "p2")));
    }
}
