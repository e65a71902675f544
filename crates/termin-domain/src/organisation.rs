//! Staff and their organisations: a token whose access to an organisation type comes from
//! `user/` scopes alone (see [`RequestContext::organisation_reach`]) reaches only the resources
//! of the Organizations its `fhirUser` works for — through `PractitionerRole.organization`:
//! those Organizations, their PractitionerRoles and HealthcareServices, the Schedules whose
//! actor is one of these or a Practitioner with a role there, those Schedules' Slots, and the
//! Appointments taking such a Slot or naming such an actor, and the AuditEvents about such an
//! Appointment or about a patient with one. Writes outside answer 403; reads of Appointments
//! and AuditEvents outside answer 404 and searches find only the organisations' ones (the
//! directory types stay readable as the directory is).
//!
//! Every rule is a search [`Condition`] evaluated by the store, so nothing is resolved or
//! cached here, and a role moved to another organisation takes effect with the next request.

use crate::DomainError;
use crate::unit_of_work::UnitOfWork;
use serde_json::{Map, Value};
use termin_fhir::ResourceType;
use termin_store::{Condition, OrganisationReach, Permission, ReferenceMatch, RequestContext, StaffMember};

/// The organisation types staff also read only for their organisations (the others are the
/// public directory).
pub(crate) const READ_CONFINED: [ResourceType; 2] = [ResourceType::Appointment, ResourceType::AuditEvent];

fn local(target: ResourceType, id: &str) -> ReferenceMatch {
    ReferenceMatch::Local { target_type: Some(target.as_str().to_owned()), id: id.to_owned(), version: None }
}

fn chain(param: &str, target_type: ResourceType, condition: Condition) -> Condition {
    Condition::Chain { param: param.to_owned(), target_type, condition: Box::new(condition) }
}

/// The PractitionerRoles that make up the staff member.
fn own_roles(member: StaffMember<'_>) -> Condition {
    match member {
        StaffMember::PractitionerRole(id) => Condition::IdIn(vec![id.to_owned()]),
        StaffMember::Practitioner(id) => Condition::ReferenceAny {
            param: "practitioner".to_owned(),
            alternatives: vec![local(ResourceType::Practitioner, id)],
        },
    }
}

/// `param` refers to one of the staff member's Organizations.
fn of_organisations(param: &str, member: StaffMember<'_>) -> Condition {
    chain(param, ResourceType::Organization, condition(ResourceType::Organization, member))
}

/// `param` refers to a PractitionerRole, HealthcareService or Practitioner of the staff
/// member's Organizations.
fn refers_to_actor(param: &str, member: StaffMember<'_>) -> Condition {
    Condition::Any(
        [ResourceType::PractitionerRole, ResourceType::HealthcareService, ResourceType::Practitioner]
            .into_iter()
            .map(|target| chain(param, target, condition(target, member)))
            .collect(),
    )
}

/// The resources of `resource_type` that belong to the staff member's Organizations.
pub(crate) fn condition(resource_type: ResourceType, member: StaffMember<'_>) -> Condition {
    match resource_type {
        ResourceType::Organization => Condition::ReferencedBy {
            source_type: ResourceType::PractitionerRole,
            param: "organization".to_owned(),
            condition: Box::new(own_roles(member)),
        },
        ResourceType::PractitionerRole | ResourceType::HealthcareService => of_organisations("organization", member),
        ResourceType::Practitioner => Condition::ReferencedBy {
            source_type: ResourceType::PractitionerRole,
            param: "practitioner".to_owned(),
            condition: Box::new(of_organisations("organization", member)),
        },
        ResourceType::Schedule => refers_to_actor("actor", member),
        ResourceType::Slot => chain("schedule", ResourceType::Schedule, condition(ResourceType::Schedule, member)),
        ResourceType::Appointment => Condition::Any(vec![
            chain("slot", ResourceType::Slot, condition(ResourceType::Slot, member)),
            refers_to_actor("actor", member),
        ]),
        // The accesses to the organisations' Appointments and to the data of their patients.
        ResourceType::AuditEvent => {
            let appointments = || condition(ResourceType::Appointment, member);
            let their_patients = Condition::ReferencedBy {
                source_type: ResourceType::Appointment,
                param: "patient".to_owned(),
                condition: Box::new(appointments()),
            };
            Condition::Any(vec![
                chain("entity", ResourceType::Appointment, appointments()),
                chain("entity", ResourceType::Patient, their_patients),
            ])
        }
        // Not an organisation type: nothing of it belongs to an organisation.
        _ => Condition::IdIn(Vec::new()),
    }
}

/// The search condition confining `permission` on `resource_type` to the caller's
/// organisations: `None` when it reaches every organisation's resources.
pub(crate) fn confinement(ctx: &RequestContext, resource_type: ResourceType, permission: Permission) -> Option<Condition> {
    match ctx.organisation_reach(resource_type, permission) {
        OrganisationReach::All => None,
        OrganisationReach::StaffOf(member) => Some(condition(resource_type, member)),
        OrganisationReach::None => Some(Condition::IdIn(Vec::new())),
    }
}

/// The references of a resource's content that place it in an organisation.
fn placing_references(resource_type: ResourceType, id: &str, body: &Map<String, Value>) -> Vec<(ResourceType, String)> {
    let references = |element: Option<&Value>| -> Vec<String> {
        let values: Vec<&Value> = match element {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item) => vec![item],
            None => Vec::new(),
        };
        values.iter().filter_map(|v| v.get("reference").and_then(Value::as_str).map(str::to_owned)).collect()
    };
    let typed = |reference: &str, targets: &[ResourceType]| {
        targets.iter().find_map(|t| crate::model::reference_id(reference, *t).map(|id| (*t, id)))
    };
    let actors = [ResourceType::PractitionerRole, ResourceType::HealthcareService, ResourceType::Practitioner];
    match resource_type {
        ResourceType::Organization => vec![(ResourceType::Organization, id.to_owned())],
        ResourceType::PractitionerRole => references(body.get("organization")).iter().filter_map(|r| typed(r, &[ResourceType::Organization])).collect(),
        ResourceType::HealthcareService => references(body.get("providedBy")).iter().filter_map(|r| typed(r, &[ResourceType::Organization])).collect(),
        ResourceType::Schedule => references(body.get("actor")).iter().filter_map(|r| typed(r, &actors)).collect(),
        ResourceType::Slot => references(body.get("schedule")).iter().filter_map(|r| typed(r, &[ResourceType::Schedule])).collect(),
        ResourceType::Appointment => {
            let participants = body.get("participant").and_then(Value::as_array).into_iter().flatten();
            let slots = references(body.get("slot")).into_iter().filter_map(|r| typed(&r, &[ResourceType::Slot]));
            let actors = participants.flat_map(|p| references(p.get("actor"))).filter_map(|r| typed(&r, &actors));
            slots.chain(actors).collect()
        }
        _ => Vec::new(),
    }
}

fn other_organisation(resource_type: ResourceType) -> DomainError {
    DomainError::forbidden(format!(
        "This access token's user/ scopes reach only the {resource_type} resources of the Organizations its fhirUser \
         (a Practitioner or PractitionerRole) works for, through PractitionerRole.organization"
    ))
}

/// A write of an organisation type by staff keeps to their organisations: the resource it
/// changes or deletes belongs to one, and so does the new content (through what it refers
/// to: the Schedule of a Slot, the Slots or actors of an Appointment ...). Else 403.
pub(crate) async fn check_write(
    tx: &mut UnitOfWork,
    ctx: &RequestContext,
    resource_type: ResourceType,
    id: &str,
    previous: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> Result<(), DomainError> {
    let permission = crate::model::write_permission(previous, new);
    let member = match ctx.organisation_reach(resource_type, permission) {
        OrganisationReach::All => return Ok(()),
        OrganisationReach::None => return Err(other_organisation(resource_type)),
        OrganisationReach::StaffOf(member) => member,
    };
    if previous.is_some() {
        let stored = tx.find_ids(resource_type, &[Condition::IdIn(vec![id.to_owned()]), condition(resource_type, member)], 1).await?;
        if stored.is_empty() {
            return Err(other_organisation(resource_type));
        }
    }
    if let Some(new) = new {
        let mut placed = false;
        for (target, target_id) in placing_references(resource_type, id, new) {
            let conditions = [Condition::IdIn(vec![target_id]), condition(target, member)];
            if !tx.find_ids(target, &conditions, 1).await?.is_empty() {
                placed = true;
                break;
            }
        }
        if !placed {
            return Err(other_organisation(resource_type));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_is_placed_by_what_it_refers_to() {
        let appointment = json!({
            "slot": [{"reference": "Slot/s1"}],
            "participant": [{"actor": {"reference": "Patient/p1"}}, {"actor": {"reference": "https://x.test/fhir/PractitionerRole/r1"}}],
        });
        assert_eq!(
            placing_references(ResourceType::Appointment, "a", appointment.as_object().unwrap()),
            vec![(ResourceType::Slot, "s1".to_owned()), (ResourceType::PractitionerRole, "r1".to_owned())]
        );
        let service = json!({"providedBy": {"reference": "Organization/o1"}});
        assert_eq!(
            placing_references(ResourceType::HealthcareService, "h", service.as_object().unwrap()),
            vec![(ResourceType::Organization, "o1".to_owned())]
        );
        assert_eq!(placing_references(ResourceType::Organization, "o2", &Map::new()), vec![(ResourceType::Organization, "o2".to_owned())]);
        assert!(placing_references(ResourceType::Slot, "s", &Map::new()).is_empty());
    }

    #[test]
    fn a_role_reaches_the_slots_of_its_organisations_schedules() {
        let slots = condition(ResourceType::Slot, StaffMember::PractitionerRole("r1"));
        let Condition::Chain { param, target_type, .. } = &slots else { panic!("{slots:?}") };
        assert_eq!((param.as_str(), *target_type), ("schedule", ResourceType::Schedule));
        assert!(format!("{slots:?}").contains("IdIn([\"r1\"])"));
    }
}
