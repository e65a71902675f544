//! Validation over HTTP: writes that do not conform are rejected (422) and change nothing,
//! conforming ones are stored carrying their profile, warnings reach `Prefer:
//! return=OperationOutcome`, `$validate` answers without storing, and the
//! CapabilityStatement names the enforced profiles.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const AT_PATIENT: &str = "http://hl7.at/fhir/HL7ATCoreProfiles/5.0.0/StructureDefinition/at-core-patient";
const AT_SLOT: &str = "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-slot";
const LEGACY_AT_SLOT: &str = "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/at-scheduling-slot";

async fn validating_server() -> TestServer {
    TestServer::start_with(ServerOptions::new().validation()).await
}

/// An AT Core Patient: social security number, name, gender.
fn at_patient() -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
            "system": "urn:oid:1.2.40.0.10.1.4.3.1",
            "value": "1234010180"
        }],
        "name": [{"family": "Huber", "given": ["Anna"]}],
        "gender": "female",
        "birthDate": "1980-01-01"
    })
}

fn slot() -> Value {
    json!({
        "resourceType": "Slot",
        "schedule": {"reference": "Schedule/s1"},
        "status": "free",
        "start": "2025-09-15T08:00:00+02:00",
        "end": "2025-09-15T08:30:00+02:00"
    })
}

fn has_issue(outcome: &Value, severity: &str, code: &str, expression: &str) -> bool {
    outcome["issue"].as_array().into_iter().flatten().any(|issue| {
        issue["severity"] == severity
            && issue["code"] == code
            && issue["expression"].as_array().into_iter().flatten().any(|e| e == expression)
    })
}

#[tokio::test]
async fn a_nonconforming_create_is_rejected_with_one_issue_per_problem_and_nothing_is_stored() {
    let s = validating_server().await;
    let mut patient = at_patient();
    patient["gender"] = json!("femal");
    patient["identifier"][0]["system"] = json!("urn:oid:1.2.40.0.10.1.4.3.9");
    patient["birthDate"] = json!("1980-02-30");
    patient["nickname"] = json!("Anni");
    let outcome = s.post("Patient", &patient).await.outcome(422);
    for (code, expression) in [
        ("code-invalid", "Patient.gender"),
        ("value", "Patient.identifier[0].system"),
        ("value", "Patient.birthDate"),
        ("structure", "Patient.nickname"),
    ] {
        assert!(has_issue(&outcome, "error", code, expression), "no {code} at {expression}: {outcome}");
    }
    assert_eq!(s.type_history_len("Patient").await, 0);
}

#[tokio::test]
async fn the_at_profile_is_enforced_on_update_and_conditional_update() {
    let s = validating_server().await;
    // AT Core Patient requires name and gender; R5 alone does not.
    let minimal = json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"});
    let outcome = s.put("Patient/p1", &minimal).await.outcome(422);
    assert!(has_issue(&outcome, "error", "required", "Patient.name"), "{outcome}");
    assert!(has_issue(&outcome, "error", "required", "Patient.gender"), "{outcome}");
    let mut instant_without_offset = slot();
    instant_without_offset["start"] = json!("2025-09-15T08:00:00");
    let outcome = s.put("Slot?identifier=urn:x|1", &instant_without_offset).await.outcome(422);
    assert!(has_issue(&outcome, "error", "value", "Slot.start"), "{outcome}");
    assert_eq!(s.type_history_len("Patient").await + s.type_history_len("Slot").await, 0);
}

#[tokio::test]
async fn conforming_resources_are_stored_with_their_enforced_profile() {
    let s = validating_server().await;
    let created = s.post("Patient", &at_patient()).await.expect_status(201).json();
    assert_eq!(created["meta"]["profile"], json!([AT_PATIENT]));
    let read = s.read("Patient", &id_of(&created)).await;
    assert_eq!(read["meta"]["profile"], json!([AT_PATIENT]));
    // The same content again is no new version: the profile is part of what was stored.
    let mut again = read.clone();
    again.as_object_mut().unwrap().remove("meta");
    let r = s.put(&format!("Patient/{}", id_of(&created)), &again).await.expect_status(200);
    assert_eq!(r.json()["meta"]["versionId"], "1");
    // Location has no AT profile: R5 only, nothing claimed.
    let location = s.post("Location", &json!({"resourceType": "Location", "name": "Raum 1"})).await.expect_status(201).json();
    assert!(location["meta"].get("profile").is_none(), "{location}");
}

#[tokio::test]
async fn the_legacy_canonical_base_is_accepted_in_meta_profile() {
    let s = validating_server().await;
    let mut legacy = slot();
    legacy["meta"] = json!({"profile": [LEGACY_AT_SLOT]});
    let created = s.post("Slot", &legacy).await.expect_status(201).json();
    let profiles = created["meta"]["profile"].as_array().unwrap();
    assert!(profiles.contains(&json!(LEGACY_AT_SLOT)) && profiles.contains(&json!(AT_SLOT)), "{created}");
}

#[tokio::test]
async fn warnings_do_not_block_and_reach_prefer_operation_outcome() {
    let s = validating_server().await;
    let r = s
        .send(json_body(s.request(Method::POST, "Patient"), &at_patient()).header("Prefer", "return=OperationOutcome"))
        .await;
    let outcome = r.expect_status(201).json();
    // The SVNR type's value set (termgit.elga.gv.at) is in no package: a warning, not an error.
    assert!(has_issue(&outcome, "warning", "not-supported", "Patient.identifier[0].type"), "{outcome}");
    assert_eq!(outcome["issue"][0]["severity"], "information");
}

#[tokio::test]
async fn book_rejects_a_nonconforming_appointment_before_anything_happens() {
    let s = validating_server().await;
    let appointment = json!({
        "resourceType": "Appointment",
        "status": "proposed",
        "start": "2025-09-15T08:00:00+02:00",
        "participant": [{"actor": {"reference": "Practitioner/p1"}, "status": "accepted"}]
    });
    let parameters = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource", "resource": appointment}]});
    let outcome = s.post("Appointment/$book", &parameters).await.outcome(422);
    assert!(has_issue(&outcome, "error", "required", "Appointment.participant"), "{outcome}");
    assert!(has_issue(&outcome, "error", "invariant", "Appointment"), "app-2 (start without end): {outcome}");
    assert_eq!(s.type_history_len("Appointment").await, 0);
}

#[tokio::test]
async fn validate_answers_with_the_outcome_and_stores_nothing() {
    let s = validating_server().await;
    let mut broken = at_patient();
    broken["gender"] = json!("x");
    // Type level, raw resource body: 200 even with errors.
    let outcome = s.post("Patient/$validate", &broken).await.outcome(200);
    assert!(has_issue(&outcome, "error", "code-invalid", "Patient.gender"), "{outcome}");
    // Parameters with a profile, instance level.
    let mut valid = at_patient();
    valid["id"] = json!("p7");
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": valid},
        {"name": "profile", "valueCanonical": AT_PATIENT}
    ]});
    let outcome = s.post("Patient/p7/$validate", &parameters).await.expect_status(200).json();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(!outcome["issue"].as_array().unwrap().iter().any(|i| i["severity"] == "error"), "{outcome}");
    // An unknown profile, a mismatched id, another type.
    s.post("Patient/$validate?profile=http://example.org/none", &at_patient()).await.outcome(400);
    s.post("Patient/other/$validate", &parameters).await.outcome(400);
    s.post("Slot/$validate", &at_patient()).await.outcome(400);
    assert_eq!(s.type_history_len("Patient").await, 0);
}

#[tokio::test]
async fn capability_statement_names_the_enforced_profiles_and_validate() {
    let s = validating_server().await;
    let capability = s.get("metadata").await.expect_status(200).json();
    let resource = |t: &str| {
        capability["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(resource("Patient")["supportedProfile"], json!([AT_PATIENT]));
    assert_eq!(resource("Slot")["supportedProfile"], json!([AT_SLOT]));
    assert!(resource("Location").get("supportedProfile").is_none(), "AT Core has no Location profile");
    let operations: Vec<Value> = resource("Location")["operation"].as_array().cloned().unwrap_or_default();
    assert!(operations.iter().any(|o| o["name"] == "validate"), "{operations:?}");
    let definition = s.get("OperationDefinition/resource-validate").await.expect_status(200).json();
    assert_eq!(definition["code"], "validate");
    let log = s.stderr_lines().join("\n");
    assert!(log.contains("loaded FHIR packages for validation"), "{log}");
    assert!(log.contains("hl7.at.fhir.core.r5#2.0.0 (built in)") && log.contains("hl7.fhir.r5.core#5.0.0"), "{log}");
}

/// Issue 15: with no validation flags at all, AT Core is enforced — from the packages built into
/// the binary, not from any directory beside it.
#[tokio::test]
async fn a_server_started_without_flags_rejects_a_patient_without_gender() {
    let s = validating_server().await;
    let mut patient = at_patient();
    patient.as_object_mut().unwrap().remove("gender");
    let outcome = s.post("Patient", &patient).await.outcome(422);
    assert!(diagnostics(&outcome).contains("gender"), "{outcome}");
    s.get("Patient?_summary=count").await.expect_status(200).json()["total"]
        .as_u64()
        .filter(|total| *total == 0)
        .expect("the rejected Patient is not stored");
    s.post("Patient", &at_patient()).await.expect_status(201);
}

#[tokio::test]
async fn with_validation_off_nothing_is_validated_and_validate_is_not_offered() {
    let s = TestServer::start().await;
    // R5 would reject the unknown element; with validation off it is stored as received.
    let lenient = json!({"resourceType": "Patient", "name": [{"family": "Frei"}], "nickname": "F"});
    s.post("Patient", &lenient).await.expect_status(201);
    s.post("Patient/$validate", &lenient).await.outcome(501);
    let capability = s.get("metadata").await.expect_status(200).json();
    let patient = capability["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").cloned().unwrap();
    assert!(patient.get("supportedProfile").is_none());
    let offered = patient["operation"].as_array().cloned().unwrap_or_default();
    assert!(!offered.iter().any(|o| o["name"] == "validate"), "{offered:?}");
}
