//! The FHIR JSON of each planned entity, shaped like the AT Core and AT Scheduling examples.

use crate::calendar::WEEKLY_HOURS;
use termin_calendar::{GENERATED_SLOT_SYSTEM, day_code, generated_slot_id, generated_slot_identifier, local_text};
use crate::data::{MOBILE_PREFIXES, PLACES, ascii_slug};
use crate::plan::{Absence, Address, OrganizationKind, Plan, SlotPlan};
use serde_json::{Map, Value, json};

const AT_CORE: &str = "http://hl7.at/fhir/HL7ATCoreProfiles/5.0.0/StructureDefinition/";
const AT_SCHEDULING: &str = "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/";
/// Termin's Schedule extension with the rules its server generates Slots by.
const SLOT_GENERATION: &str = "https://termin.at/fhir/StructureDefinition/slot-generation";

const SVNR_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.1";
const VPNR_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.2";
const KANR_SYSTEM: &str = "urn:oid:1.2.40.0.34.4.10";
/// The fixed `assigner.display` of the SVNR and VPNR slices.
const SOCIAL_INSURANCE: &str = "Dachverband der österreichischen Sozialversicherungsträger";
/// The fixed `assigner.display` of the KANR slice.
const HEALTH_MINISTRY: &str = "Österreichisches Bundesministerium für Gesundheit";
/// The ELGA code system of healthcare provider roles (organization types and professions).
const GDA_ROLES: &str = "https://termgit.elga.gv.at/CodeSystem/elga-gtelvogdarollen";

pub fn organization_id(index: usize) -> String {
    format!("seed-org-{index}")
}
pub fn location_id(index: usize) -> String {
    format!("seed-location-{index}")
}
pub fn practitioner_id(index: usize) -> String {
    format!("seed-practitioner-{index}")
}
pub fn service_id(index: usize) -> String {
    format!("seed-service-{index}")
}
pub fn role_id(index: usize) -> String {
    format!("seed-role-{index}")
}
pub fn schedule_id(index: usize) -> String {
    format!("seed-schedule-{index}")
}
pub fn patient_id(index: usize) -> String {
    format!("seed-patient-{index}")
}
/// The id the server's slot generation gives the slot of a role's Schedule at `start`.
pub fn slot_id(role: usize, start: jiff::Timestamp) -> String {
    generated_slot_id(&schedule_id(role), start)
}
pub fn appointment_id(index: usize) -> String {
    format!("seed-appointment-{index}")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("resources are built as JSON objects"),
    }
}

fn meta(profile_base: &str, profile: &str) -> Value {
    json!({"profile": [format!("{profile_base}{profile}")]})
}

/// An AT Core address: the street line also split into street name and house number.
fn address(address: &Address, use_: &str) -> Value {
    let place = &PLACES[address.place];
    json!({
        "use": use_,
        "type": "both",
        "line": [format!("{} {}", address.street, address.house_number)],
        "_line": [{"extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName", "valueString": address.street},
            {"url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber", "valueString": address.house_number.to_string()},
        ]}],
        "city": place.city,
        "postalCode": place.postal_code,
        "state": place.state,
        "country": "AUT",
    })
}

/// The one code of the AT Scheduling service-type value set.
fn physiotherapy() -> Value {
    json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65", "display": "Physiotherapy"}]})
}

/// A service type as the IG writes it, plus the reference to the HealthcareService offering it.
fn service_type(plan: &Plan, service: usize) -> Value {
    json!([{
        "concept": physiotherapy(),
        "reference": {"reference": format!("HealthcareService/{}", service_id(service)), "display": plan.services[service].name},
    }])
}

fn reference(resource_type: &str, id: String, display: impl Into<Value>) -> Value {
    json!({"reference": format!("{resource_type}/{id}"), "display": display.into()})
}

fn organization_phone(plan: &Plan, organization: usize) -> String {
    let organization = &plan.organizations[organization];
    let area_code = PLACES[organization.address.place].area_code;
    format!("+43 {area_code} {}", 20_000 + organization.vpnr % 80_000)
}

pub fn organization(plan: &Plan, index: usize) -> Map<String, Value> {
    let organization = &plan.organizations[index];
    let mut identifiers = vec![
        json!({"system": VPNR_SYSTEM, "value": organization.vpnr.to_string(), "assigner": {"display": SOCIAL_INSURANCE}}),
    ];
    if let Some(kanr) = organization.kanr {
        identifiers.push(json!({"system": KANR_SYSTEM, "value": format!("K{kanr}"), "assigner": {"display": HEALTH_MINISTRY}}));
    }
    let (type_code, type_display) = match organization.kind {
        OrganizationKind::Hospital => ("300", "Allgemeine Krankenanstalt"),
        OrganizationKind::Ambulatorium => ("304", "Selbstständiges Ambulatorium"),
    };
    let email = format!("office@{}.at", ascii_slug(&organization.name));
    object(json!({
        "resourceType": "Organization",
        "id": organization_id(index),
        "meta": meta(AT_CORE, "at-core-organization"),
        "identifier": identifiers,
        "active": true,
        "type": [{"coding": [{"system": GDA_ROLES, "code": type_code, "display": type_display}]}],
        "name": organization.name,
        "contact": [{
            "telecom": [
                {"system": "phone", "value": organization_phone(plan, index), "use": "work"},
                {"system": "email", "value": email, "use": "work"},
            ],
            "address": address(&organization.address, "work"),
        }],
    }))
}

/// Each organization has one site, at its own address, positioned at its town's centre.
pub fn location(plan: &Plan, index: usize) -> Map<String, Value> {
    let organization = &plan.organizations[index];
    let place = &PLACES[organization.address.place];
    object(json!({
        "resourceType": "Location",
        "id": location_id(index),
        "status": "active",
        "name": format!("{} – {}", organization.name, place.city),
        "mode": "instance",
        "contact": [{"telecom": [{"system": "phone", "value": organization_phone(plan, index), "use": "work"}]}],
        "address": address(&organization.address, "work"),
        "position": {"latitude": place.latitude, "longitude": place.longitude},
        "managingOrganization": reference("Organization", organization_id(index), organization.name.as_str()),
    }))
}

pub fn practitioner(plan: &Plan, index: usize) -> Map<String, Value> {
    let practitioner = &plan.practitioners[index];
    let person = &practitioner.person;
    let mut name = json!({"use": "official", "family": person.family, "given": [person.given]});
    match practitioner.degree {
        Some((degree, true)) => name["prefix"] = json!([degree]),
        Some((degree, false)) => name["suffix"] = json!([degree]),
        None => {}
    }
    // A practitioner's first role is the one with the same index (see `Plan::new`).
    let organization = plan.roles[index].organization;
    let email = format!(
        "{}.{}@{}.at",
        ascii_slug(person.given),
        ascii_slug(person.family),
        ascii_slug(&plan.organizations[organization].name)
    );
    object(json!({
        "resourceType": "Practitioner",
        "id": practitioner_id(index),
        "meta": meta(AT_CORE, "at-core-practitioner"),
        "identifier": [{"system": VPNR_SYSTEM, "value": practitioner.vpnr.to_string(), "assigner": {"display": SOCIAL_INSURANCE}}],
        "active": true,
        "name": [name],
        "telecom": [{"system": "email", "value": email, "use": "work"}],
        "gender": person.gender.code(),
        "address": [address(&plan.organizations[organization].address, "work")],
    }))
}

pub fn healthcare_service(plan: &Plan, index: usize) -> Map<String, Value> {
    let service = &plan.services[index];
    let organization = &plan.organizations[service.organization];
    object(json!({
        "resourceType": "HealthcareService",
        "id": service_id(index),
        "meta": meta(AT_SCHEDULING, "at-scheduling-healthcareservice"),
        "active": true,
        "providedBy": reference("Organization", organization_id(service.organization), organization.name.as_str()),
        "type": [{"coding": physiotherapy()["coding"], "text": service.name}],
        "location": [{"reference": format!("Location/{}", location_id(service.organization))}],
        "name": service.name,
        "appointmentRequired": true,
    }))
}

fn not_available(absence: &Absence) -> Value {
    json!({
        "description": absence.description,
        "during": {"start": absence.first.to_string(), "end": absence.last.to_string()},
    })
}

/// A role's opening hours, public holidays and own absences, as `PractitionerRole.availability`.
pub fn availability(plan: &Plan, index: usize) -> Value {
    let role = &plan.roles[index];
    let available: Vec<Value> = WEEKLY_HOURS[role.weekly_hours]
        .iter()
        .map(|window| {
            json!({
                "daysOfWeek": window.days.iter().map(|day| day_code(*day)).collect::<Vec<_>>(),
                "availableStartTime": window.start.to_string(),
                "availableEndTime": window.end.to_string(),
            })
        })
        .collect();
    let mut absences: Vec<&Absence> = plan.holidays.iter().chain(&role.absences).collect();
    absences.sort_by_key(|absence| absence.first);
    let mut availability = json!({"availableTime": available});
    if !absences.is_empty() {
        availability["notAvailableTime"] = absences.into_iter().map(not_available).collect();
    }
    availability
}

pub fn practitioner_role(plan: &Plan, index: usize) -> Map<String, Value> {
    let role = &plan.roles[index];
    object(json!({
        "resourceType": "PractitionerRole",
        "id": role_id(index),
        "meta": meta(AT_CORE, "at-core-practitionerRole"),
        "active": true,
        "practitioner": reference("Practitioner", practitioner_id(role.practitioner), plan.practitioners[role.practitioner].display()),
        "organization": reference("Organization", organization_id(role.organization), plan.organizations[role.organization].name.as_str()),
        "code": [{"coding": [{"system": GDA_ROLES, "code": "205", "display": "Physiotherapeutin/Physiotherapeut"}]}],
        "location": [{"reference": format!("Location/{}", location_id(role.organization))}],
        "healthcareService": [reference("HealthcareService", service_id(role.service), plan.services[role.service].name)],
        "availability": [availability(plan, index)],
    }))
}

/// One schedule per role, its actors the role and its practitioner.
pub fn schedule(plan: &Plan, index: usize) -> Map<String, Value> {
    let role = &plan.roles[index];
    let practitioner = plan.practitioners[role.practitioner].display();
    object(json!({
        "resourceType": "Schedule",
        "id": schedule_id(index),
        "meta": meta(AT_SCHEDULING, "at-scheduling-schedule"),
        "active": true,
        "serviceType": service_type(plan, role.service),
        "actor": [
            reference("PractitionerRole", role_id(index), format!("{practitioner} – {}", plan.organizations[role.organization].name)),
            reference("Practitioner", practitioner_id(role.practitioner), practitioner.as_str()),
        ],
        "planningHorizon": {
            "start": local_text(&plan.zone, plan.horizon_start()),
            "end": local_text(&plan.zone, plan.horizon_end()),
        },
        "name": format!("{} – {practitioner}", plan.services[role.service].name),
        // The role's notAvailableTime lists the public holidays itself.
        "extension": [{"url": SLOT_GENERATION, "extension": [
            {"url": "slot-duration", "valueDuration": {
                "value": crate::calendar::SLOT_LENGTH.as_mins(), "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"
            }},
            {"url": "public-holidays", "valueBoolean": false},
        ]}],
    }))
}

pub fn patient(plan: &Plan, index: usize) -> Map<String, Value> {
    let patient = &plan.patients[index];
    let (prefix, number) = patient.mobile;
    object(json!({
        "resourceType": "Patient",
        "id": patient_id(index),
        "meta": meta(AT_CORE, "at-core-patient"),
        "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS", "display": "Social Security number"}]},
            "system": SVNR_SYSTEM,
            "value": patient.svnr,
            "assigner": {"display": SOCIAL_INSURANCE},
        }],
        "active": true,
        "name": [{"use": "official", "family": patient.person.family, "given": [patient.person.given]}],
        "telecom": [{"system": "phone", "value": format!("+43 {} {number}", MOBILE_PREFIXES[prefix]), "use": "mobile"}],
        "gender": patient.person.gender.code(),
        "birthDate": patient.birth_date.to_string(),
        "address": [address(&patient.address, "home")],
    }))
}

pub fn slot(plan: &Plan, slot: &SlotPlan) -> Map<String, Value> {
    let role = &plan.roles[slot.role];
    object(json!({
        "resourceType": "Slot",
        "id": slot_id(slot.role, slot.start),
        "identifier": [{"system": GENERATED_SLOT_SYSTEM, "value": generated_slot_identifier(&schedule_id(slot.role), slot.start)}],
        "meta": meta(AT_SCHEDULING, "at-scheduling-slot"),
        "extension": [{
            "url": format!("{AT_SCHEDULING}slot-encounter-class"),
            "valueCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"}]},
        }],
        "serviceType": service_type(plan, role.service),
        "schedule": {"reference": format!("Schedule/{}", schedule_id(slot.role))},
        "status": if slot.booking.is_some() { "busy" } else { "free" },
        "start": local_text(&plan.zone, slot.start),
        "end": local_text(&plan.zone, slot.end),
    }))
}

/// The booked appointment of a busy slot, or `None` for a free one.
pub fn appointment(plan: &Plan, slot: &SlotPlan) -> Option<Map<String, Value>> {
    let booking = slot.booking.as_ref()?;
    let role = &plan.roles[slot.role];
    let patient = plan.patients[booking.patient].person.full_name();
    let patient_reference = reference("Patient", patient_id(booking.patient), patient.as_str());
    let minutes = crate::calendar::SLOT_LENGTH.as_mins();
    Some(object(json!({
        "resourceType": "Appointment",
        "id": appointment_id(booking.index),
        "meta": meta(AT_SCHEDULING, "at-scheduling-appointment"),
        "status": "booked",
        "serviceType": service_type(plan, role.service),
        "description": format!("{} {minutes} Minuten", plan.services[role.service].name),
        "start": local_text(&plan.zone, slot.start),
        "end": local_text(&plan.zone, slot.end),
        "minutesDuration": minutes,
        "slot": [{"reference": format!("Slot/{}", slot_id(slot.role, slot.start))}],
        "created": local_text(&plan.zone, booking.created),
        "subject": patient_reference,
        "participant": [
            {"actor": patient_reference, "required": true, "status": "accepted"},
            {
                "actor": reference("PractitionerRole", role_id(slot.role), plan.practitioners[role.practitioner].display()),
                "required": true,
                "status": "accepted",
            },
        ],
    })))
}
