//! Issue 15, AT Scheduling IG second pass: hold → book → release as an IG client does it (no
//! `hold-token`, no Termin-only parameter), and `$book` as the IG describes it: booking
//! requests without a slot, references by business identifier, the "HealthcareService
//! supported" precondition, Group subjects, rejection texts and the IG example's times.

mod scheduling_support;
mod support;

use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

const SLOT_01: &str = "HL7ATSchedulingSlotExample01-free";
/// Where the test puts the IG's Slot 01 (its own hour, 2025-09-15T08:00Z, has passed and
/// only slots that have not started can be booked).
const SLOT_01_START: &str = "2030-09-16T08:00:00Z";
const SLOT_01_END: &str = "2030-09-16T09:00:00Z";
const BOOKING_REQUESTS: &str = "https://termin.at/fhir/StructureDefinition/booking-requests";

/// The IG examples the flow refers to, stored with their own ids on a fresh server that
/// validates against the IG packages. The example Slots are variants of one past hour: each
/// moves to an hour of its own in the future (bookable Slots of one Schedule may not overlap),
/// Slot 01 to [`SLOT_01_START`].
async fn ig_server() -> TestServer {
    let s = TestServer::start_with(ServerOptions::new().validation()).await;
    load_ig_examples_with_future_slots(&s).await;
    let slot = s.read("Slot", SLOT_01).await;
    assert_eq!((slot["start"].as_str(), slot["end"].as_str()), (Some(SLOT_01_START), Some(SLOT_01_END)));
    s
}

/// examples/Slot-operationHold-request.md, as JSON.
fn ig_hold_request() -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": "Slot/HL7ATSchedulingSlotExample01-free"}},
        {"name": "slot-status", "valueCode": "busy-tentative"}
    ]})
}

/// examples/Slot-operationHoldRelease-request.md, as JSON, with its quirks (`Slt/`, `code`).
fn ig_release_request() -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": "Slt/HL7ATSchedulingSlotExample01-free"}},
        {"name": "slot-status", "code": "free"}
    ]})
}

/// examples/Appointment-operationBook-request.md, as JSON.
fn ig_book_request() -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource", "resource": {
        "resourceType": "Appointment",
        "id": "HL7ATSchedulingAppointmentExample01",
        "meta": {"profile": ["http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/StructureDefinition/at-scheduling-appointment"]},
        "status": "proposed",
        "serviceType": [{"concept": {"coding": [{
            "system": "http://hl7.at/fhir/TC-FHIR-AG-Scheduling-R5/R5/ValueSet/AtSchedulingServiceType",
            "code": "65", "display": "Physiotherapy"}]}}],
        "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276",
            "code": "CHECKUP", "display": "A routine check-up, such as an annual physical"}]},
        "description": "Physiotherapie - Einzelbehandlung 30 Minuten",
        "start": "2025-06-01T09:00:00+02:00",
        "end": "2025-06-01T09:30:00+02:00",
        "minutesDuration": 30,
        "created": "2025-05-10T14:23:00+02:00",
        "slot": [{"reference": "Slot/HL7ATSchedulingSlotExample01-free"}],
        "subject": {"reference": "Patient/HL7ATCorePatientExample01"},
        "participant": [
            {"actor": {"reference": "Patient/HL7ATCorePatientExample01", "display": "Max Mustermann"},
             "required": true, "status": "accepted"},
            {"actor": {"reference": "Practitioner/HL7ATCorePractitionerExample01", "display": "Melanie Musterärztin"},
             "required": true, "status": "accepted"}
        ]
    }}]})
}

/// The IG's success outcome: one `information` issue coded `success`, with its text.
#[track_caller]
fn assert_ig_success(params: &Value) {
    let outcome = param_resource(params, "outcome");
    let issue = &outcome["issue"][0];
    assert_eq!((issue["severity"].as_str(), issue["code"].as_str()), (Some("information"), Some("success")), "{outcome}");
    assert!(issue["details"]["text"].as_str().is_some_and(|t| !t.is_empty()), "{outcome}");
}

#[tokio::test]
async fn ig_example_requests_hold_release_and_book_without_termin_extras() {
    let s = ig_server().await;

    // Hold (IG request, verbatim): 200, the slot busy-tentative, a success outcome.
    let r = s.post("Slot/$hold", &ig_hold_request()).await.expect_status(200).json();
    assert_eq!(param_resource(&r, "slot")["status"], "busy-tentative", "{r}");
    assert_ig_success(&r);
    // Release (IG request, verbatim, no token): the same client owns its hold.
    let r = s.post("Slot/$hold", &ig_release_request()).await.expect_status(200).json();
    assert_eq!(param_resource(&r, "slot")["status"], "free", "{r}");
    assert_ig_success(&r);
    assert_eq!(slot_status(&s, SLOT_01).await, "free");

    // Hold again, then book (IG request, verbatim). The IG's example books 2025-06-01 09:00 to
    // 09:30 on a Slot that runs elsewhen: refused, saying which times disagree and the slot's.
    s.post("Slot/$hold", &ig_hold_request()).await.expect_status(200);
    let o = s.post("Appointment/$book", &ig_book_request()).await.outcome(422);
    let text = diagnostics(&o);
    for expected in [
        "Appointment.start is 2025-06-01T09:00:00+02:00",
        "Appointment.end is 2025-06-01T09:30:00+02:00",
        &format!("starts at {SLOT_01_START}"),
        &format!("ends at {SLOT_01_END}"),
        &format!("Slot/{SLOT_01}"),
        "minutesDuration is 30",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from {o}");
    }
    let paths = expressions(&o);
    for path in ["Appointment.start", "Appointment.end", "Appointment.minutesDuration"] {
        assert!(paths.iter().any(|p| p == path), "{path} not named: {o}");
    }
    assert_eq!(slot_status(&s, SLOT_01).await, "busy-tentative", "the refusal left the hold alone");

    // The same request with the slot's times (the only change; the IG's own example is
    // inconsistent there), still without any token: booked through the hold.
    let mut request = ig_book_request();
    let appointment = &mut request["parameter"][0]["resource"];
    appointment["start"] = json!(SLOT_01_START);
    appointment["end"] = json!(SLOT_01_END);
    appointment["minutesDuration"] = json!(60);
    let r = s.post("Appointment/$book", &request).await.expect_status(201).json();
    let booked = param_resource(&r, "appointment");
    assert_eq!(booked["status"], "booked", "{r}");
    assert_ne!(booked["id"], "HL7ATSchedulingAppointmentExample01", "the server assigns the id");
    assert_eq!(slot_ids(&booked), vec![SLOT_01.to_string()]);
    assert_ig_success(&r);
    assert_eq!(slot_status(&s, SLOT_01).await, "busy");
}

#[tokio::test]
async fn a_token_less_hold_is_not_another_token_holders() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    // Placed without a token, it is the caller's: neither a renewal nor a release needs one.
    hold(&s, slot).await.expect_status(200);
    hold(&s, slot).await.expect_status(200);
    // A caller presenting another token is another client: refused, with a text generic
    // clients show (issue diagnostics, details.text and the narrative).
    let r = post_with_tokens(&s, "Appointment/$book", &book_request(&appointment(&w.bert, &[slot]), &[]), &[OTHER_CLIENT]).await;
    assert_eq!(r.code(), 409, "{}", r.text());
    let body = r.json();
    assert_eq!(body["resourceType"], "Parameters");
    let outcome = param_resource(&body, "outcome");
    let issue = &outcome["issue"][0];
    assert!(issue["diagnostics"].as_str().is_some_and(|d| d.contains(&format!("Slot/{slot} is held by another client"))), "{outcome}");
    assert_eq!(issue["details"]["text"], issue["diagnostics"]);
    let div = outcome["text"]["div"].as_str().unwrap_or_default();
    assert!(div.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">") && div.contains("is held by another client"), "{outcome}");
    // The holder books it without a token.
    book_ok(&s, &appointment(&w.anna, &[slot]), &[]).await;
    assert_eq!(slot_status(&s, slot).await, "busy");
    // A hold released by a token-less caller of the same address.
    hold(&s, &w.slots[1]).await.expect_status(200);
    release(&s, &w.slots[1], None).await.expect_status(200);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
}

#[tokio::test]
async fn a_book_without_slot_is_a_pending_booking_request() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let mut request = appointment(&w.anna, &[]);
    request.as_object_mut().unwrap().remove("slot");
    let r = book(&s, &request, &[]).await.expect_status(202).json();
    let stored = param_resource(&r, "appointment");
    assert_eq!(stored["status"], "pending");
    assert!(stored.get("slot").is_none(), "{stored}");
    let id = id_of(&stored);
    assert_eq!(s.read("Appointment", &id).await["status"], "pending");
    assert!(diagnostics(&param_resource(&r, "outcome")).contains("HealthcareService/hcs-physio"), "{r}");

    // Staff give it a slot: booked, the slot busy.
    let mut assigned = s.read("Appointment", &id).await;
    assigned["status"] = json!("booked");
    assigned["slot"] = json!([{"reference": format!("Slot/{}", w.slots[0])}]);
    let done = s.put(&format!("Appointment/{id}"), &assigned).await.expect_status(200).json();
    assert_eq!(done["start"], slot_times(0).0, "the times follow the slot");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy");

    // Without a HealthcareService nobody would see the request.
    let mut nowhere = request.clone();
    nowhere.as_object_mut().unwrap().remove("serviceType");
    let o = book(&s, &nowhere, &[]).await.outcome(422);
    assert!(expressions(&o).iter().any(|e| e == "Appointment.slot"), "{o}");
    assert!(diagnostics(&o).contains("booking request"), "{o}");

    // A service may refuse requests.
    let mut refusing = service_resource("hcs-slots-only", true, false);
    refusing["extension"] = json!([{"url": BOOKING_REQUESTS, "valueBoolean": false}]);
    put_resource(&s, &refusing).await;
    let mut asked = request.clone();
    asked["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/hcs-slots-only"});
    let before = all_of_type(&s, "Appointment").await.len();
    let o = book(&s, &asked, &[]).await.outcome(422);
    assert!(diagnostics(&o).contains("HealthcareService/hcs-slots-only takes no booking requests"), "{o}");
    assert_eq!(all_of_type(&s, "Appointment").await.len(), before, "a refused request was stored");
}

#[tokio::test]
async fn slot_and_service_may_be_named_by_business_identifier() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let mut service = service_resource(&w.service, true, false);
    service["identifier"] = json!([{"system": "urn:termin:test:service", "value": "physio-1"}]);
    put_resource(&s, &service).await;
    let mut a = appointment(&w.anna, &[]);
    a["slot"] = json!([{"identifier": {"system": "urn:termin:test:slot", "value": w.slots[1]}}]);
    a["serviceType"][0]["reference"] = json!({"identifier": {"system": "urn:termin:test:service", "value": "physio-1"}});
    let booked = book_ok(&s, &a, &[]).await;
    assert_eq!(booked["slot"][0]["reference"], format!("Slot/{}", w.slots[1]), "{booked}");
    assert_eq!(booked["serviceType"][0]["reference"]["reference"], format!("HealthcareService/{}", w.service));
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");

    let mut unknown = appointment(&w.bert, &[]);
    unknown["slot"] = json!([{"identifier": {"system": "urn:termin:test:slot", "value": "no-such-slot"}}]);
    let o = book(&s, &unknown, &[]).await.outcome(422);
    assert_eq!(expressions(&o), ["Appointment.slot[0].identifier"], "{o}");
    let mut unknown = appointment(&w.bert, &[&w.slots[0]]);
    unknown["serviceType"][0]["reference"] = json!({"identifier": {"system": "urn:termin:test:service", "value": "nope"}});
    let o = book(&s, &unknown, &[]).await.outcome(422);
    assert_eq!(expressions(&o), ["Appointment.serviceType[0].reference.identifier"], "{o}");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
}

#[tokio::test]
async fn the_service_type_and_specialty_must_be_offered() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let physio = json!({"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"});
    let sports = json!({"system": "http://snomed.info/sct", "code": "394602003"});
    let mut slot = slot_resource(&w.slots[0], &w.schedule, 0, "free");
    slot["serviceType"] = json!([{"concept": {"coding": [physio]}, "reference": {"reference": "HealthcareService/hcs-physio"}}]);
    slot["specialty"] = json!([{"coding": [sports]}]);
    put_resource(&s, &slot).await;
    put_resource(&s, &service_resource("hcs-other", true, false)).await;

    let mut wrong_type = appointment(&w.anna, &[&w.slots[0]]);
    wrong_type["serviceType"][0]["concept"]["coding"][0]["code"] = json!("12");
    let o = book(&s, &wrong_type, &[]).await.outcome(422);
    assert_eq!(expressions(&o), ["Appointment.serviceType[0]"], "{o}");
    assert!(diagnostics(&o).contains(&format!("Slot/{}", w.slots[0])), "{o}");

    let mut wrong_service = appointment(&w.anna, &[&w.slots[0]]);
    wrong_service["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/hcs-other"});
    let o = book(&s, &wrong_service, &[]).await.outcome(422);
    assert_eq!(expressions(&o), ["Appointment.serviceType[0].reference"], "{o}");

    let mut wrong_specialty = appointment(&w.anna, &[&w.slots[0]]);
    wrong_specialty["specialty"] = json!([{"coding": [{"system": "http://snomed.info/sct", "code": "419772000"}]}]);
    let o = book(&s, &wrong_specialty, &[]).await.outcome(422);
    assert_eq!(expressions(&o), ["Appointment.specialty[0]"], "{o}");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free", "a refused booking took the slot");

    // The IG's coding (its ValueSet URL as system) and the offered specialty book.
    let mut right = appointment(&w.anna, &[&w.slots[0]]);
    right["serviceType"][0]["concept"]["coding"][0]["system"] =
        json!("https://fhir.hl7.at/tc/wg/scheduling/r5/ValueSet/AtSchedulingServiceType");
    right["specialty"] = json!([{"coding": [sports]}]);
    book_ok(&s, &right, &[]).await;

    // A Schedule's declaration counts when its Slots declare nothing.
    let mut schedule = schedule_resource(&w.schedule, true, false);
    schedule["serviceType"] = json!([{"concept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "12"}]}}]);
    put_resource(&s, &schedule).await;
    let o = book(&s, &appointment(&w.bert, &[&w.slots[1]]), &[]).await.outcome(422);
    assert!(diagnostics(&o).contains(&format!("Schedule/{}", w.schedule)), "{o}");
}

#[tokio::test]
async fn a_group_subject_is_refused_clearly() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["subject"] = json!({"reference": "Group/physio-course"});
    let o = book(&s, &a, &[]).await.outcome(422);
    assert_eq!(expressions(&o), ["Appointment.subject"], "{o}");
    assert_issue_code(&o, "not-supported");
    assert!(diagnostics(&o).contains("Group"), "{o}");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
}
