//! `Appointment/$book` over HTTP (issue 4): booking free and held slots, rejection when a slot
//! is taken, atomic multi-slot bookings, idempotent repeats, the pre-conditions (422), input
//! errors (400), manual confirmation (202 pending), and the published OperationDefinitions.

mod scheduling_support;
mod support;

use std::collections::BTreeMap;

use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

/// (status, versionId) of every Slot, to prove that a failed request changed nothing.
async fn slot_versions(s: &TestServer) -> BTreeMap<String, (String, String)> {
    all_of_type(s, "Slot")
        .await
        .into_iter()
        .map(|(id, v)| (id, (v["status"].as_str().unwrap_or_default().to_string(), version_id(&v))))
        .collect()
}

async fn appointment_count(s: &TestServer) -> usize {
    all_of_type(s, "Appointment").await.len()
}

/// A 409 `$book` answer: Parameters{appointment with status cancelled and no id, outcome
/// coded conflict naming `slot` at `Appointment.slot[index]`}; no Location header.
#[track_caller]
fn assert_book_rejected(r: &Resp, slot: &str, index: usize) -> Value {
    assert_eq!(r.code(), 409, "{}: expected 409; body: {}", r.what(), r.text());
    r.assert_fhir_json();
    assert!(r.header("location").is_none(), "a rejected booking has no Location: {:?}", r.headers);
    let body = r.json();
    assert_eq!(body["resourceType"], "Parameters", "{body}");
    let appt = param_resource(&body, "appointment");
    assert_eq!(appt["resourceType"], "Appointment");
    assert_eq!(appt["status"], "cancelled", "a rejected appointment is returned as cancelled: {appt}");
    assert!(appt.get("id").is_none(), "a rejected appointment is not stored, so it has no id: {appt}");
    let outcome = param_resource(&body, "outcome");
    assert_outcome(&outcome, &r.what());
    assert_issue_code(&outcome, "conflict");
    assert!(
        diagnostics(&outcome).contains(&format!("Slot/{slot}")),
        "the outcome must name the blocking Slot/{slot}: {outcome}"
    );
    let expected = format!("Appointment.slot[{index}]");
    assert!(expressions(&outcome).contains(&expected), "expression should be {expected}: {outcome}");
    outcome
}

/// A 422 whose outcome has `expression` equal to (or starting with) `expression`.
#[track_caller]
fn assert_unprocessable(r: &Resp, expression: &str) -> Value {
    let o = r.outcome(422);
    assert!(
        expressions(&o).iter().any(|e| e == expression || e.starts_with(expression)),
        "{}: expected an issue at {expression}: {o}",
        r.what()
    );
    o
}

#[tokio::test]
async fn booking_a_free_slot_is_201_and_makes_it_busy() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    let r = book(&s, &appointment(&w.anna, &[slot]), &[]).await.expect_status(201);
    r.assert_fhir_json();
    let body = r.json();
    assert_eq!(body["resourceType"], "Parameters");
    let appt = param_resource(&body, "appointment");
    assert_eq!(appt["status"], "booked");
    let id = id_of(&appt);
    assert_eq!(version_id(&appt), "1");
    let outcome = param_resource(&body, "outcome");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome["issue"].as_array().unwrap().iter().all(|i| i["severity"] == "information"), "{outcome}");
    let location = r.require_header("location");
    assert!(
        location.contains(&format!("Appointment/{id}")),
        "Location {location} does not name Appointment/{id}"
    );
    assert_eq!(r.etag_version(), "1");
    // Start and end were filled in from the slot.
    let (start, end) = slot_times(0);
    assert_eq!(appt["start"], start.as_str());
    assert_eq!(appt["end"], end.as_str());
    // Stored as returned; the slot is busy, the other untouched.
    let stored = s.read("Appointment", &id).await;
    assert_eq!(stored, appt);
    assert_eq!(slot_status(&s, slot).await, "busy");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    // The Location header resolves.
    s.get(&location).await.expect_status(200);
}

#[tokio::test]
async fn booking_with_times_that_agree_with_the_slots_is_accepted() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let (start, end) = slot_times(0);
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["start"] = json!(start);
    a["end"] = json!(end);
    book_ok(&s, &a, &[]).await;
    // The same instants written with another offset agree too.
    let (start, end) = slot_times(1); // 2030-01-07T00:30Z .. 01:00Z
    assert_eq!((start.as_str(), end.as_str()), ("2030-01-07T00:30:00Z", "2030-01-07T01:00:00Z"));
    let mut a = appointment(&w.bert, &[&w.slots[1]]);
    a["start"] = json!("2030-01-07T01:30:00+01:00");
    a["end"] = json!("2030-01-07T02:00:00+01:00");
    let booked = book_ok(&s, &a, &[]).await;
    assert_eq!(booked["start"], "2030-01-07T01:30:00+01:00", "the client's own representation is kept");
}

#[tokio::test]
async fn a_held_slot_is_booked_only_with_the_holders_token() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let slot = &w.slots[0];
    let token = hold_ok(&s, slot).await;
    let before = slot_versions(&s).await;
    // Others: another token (parameter and header).
    assert_book_rejected(&book(&s, &appointment(&w.bert, &[slot]), &[OTHER_CLIENT]).await, slot, 0);
    assert_book_rejected(&book(&s, &appointment(&w.bert, &[slot]), &["forged"]).await, slot, 0);
    let r = post_with_tokens(&s, "Appointment/$book", &book_request(&appointment(&w.bert, &[slot]), &[]), &["forged"]).await;
    assert_book_rejected(&r, slot, 0);
    assert_eq!(slot_versions(&s).await, before, "a rejected booking changed a slot");
    assert_eq!(appointment_count(&s).await, 0, "a rejected booking was stored");
    // The holder, token as a parameter.
    let appt = book_ok(&s, &appointment(&w.anna, &[slot]), &[&token]).await;
    assert_eq!(slot_status(&s, slot).await, "busy");
    assert_eq!(s.read("Appointment", &id_of(&appt)).await["status"], "booked");

    // The holder, token in the X-Hold-Token header.
    let other = &w.slots[1];
    let token = hold_ok(&s, other).await;
    let r = post_with_tokens(&s, "Appointment/$book", &book_request(&appointment(&w.anna, &[other]), &[]), &[&token])
        .await
        .expect_status(201);
    assert_eq!(param_resource(&r.json(), "appointment")["status"], "booked");
    assert_eq!(slot_status(&s, other).await, "busy");

    // Two holds, two tokens, comma-separated in the header, one appointment over both slots.
    put_resource(&s, &slot_resource("slot-x", &w.schedule, 3, "free")).await;
    let t1 = hold_ok(&s, &w.slots[2]).await;
    let t2 = hold_ok(&s, "slot-x").await;
    let r = post_with_tokens(
        &s,
        "Appointment/$book",
        &book_request(&appointment(&w.bert, &[&w.slots[2], "slot-x"]), &[]),
        &[&t1, &t2],
    )
    .await
    .expect_status(201);
    let appt = param_resource(&r.json(), "appointment");
    assert_eq!(slot_ids(&appt), vec![w.slots[2].clone(), "slot-x".to_string()]);
    assert_eq!(slot_status(&s, &w.slots[2]).await, "busy");
    assert_eq!(slot_status(&s, "slot-x").await, "busy");
}

#[tokio::test]
async fn booking_a_booked_slot_is_409_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    let first = book_ok(&s, &appointment(&w.anna, &[slot]), &[]).await;
    let before = slot_versions(&s).await;
    let outcome = assert_book_rejected(&book(&s, &appointment(&w.bert, &[slot]), &[]).await, slot, 0);
    assert!(diagnostics(&outcome).contains("booked"), "{outcome}");
    assert_eq!(slot_versions(&s).await, before);
    let all = all_of_type(&s, "Appointment").await;
    assert_eq!(all.len(), 1, "only the first booking is stored: {all:?}");
    assert_eq!(all[&id_of(&first)]["status"], "booked");
    // A rejected appointment's returned body keeps what the client sent (apart from status).
    let r = book(&s, &appointment(&w.bert, &[slot]), &[]).await;
    let appt = param_resource(&r.json(), "appointment");
    assert_eq!(appt["subject"]["reference"], "Patient/pat-bert");
    assert_eq!(slot_ids(&appt), vec![slot.clone()]);
}

#[tokio::test]
async fn staff_blocked_slot_cannot_be_booked() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    put_resource(&s, &slot_resource(slot, &w.schedule, 0, "busy-unavailable")).await;
    assert_book_rejected(&book(&s, &appointment(&w.anna, &[slot]), &[]).await, slot, 0);
    assert_eq!(slot_status(&s, slot).await, "busy-unavailable");
    assert_eq!(appointment_count(&s).await, 0);
}

#[tokio::test]
async fn multi_slot_booking_is_all_or_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 4).await;
    let (a, b, c) = (&w.slots[0], &w.slots[1], &w.slots[2]);
    // c is held by someone else: the whole booking fails, a and b stay free.
    let token_c = hold_ok(&s, c).await;
    let before = slot_versions(&s).await;
    assert_book_rejected(&book(&s, &appointment(&w.anna, &[a, b, c]), &[OTHER_CLIENT]).await, c, 2);
    assert_eq!(slot_versions(&s).await, before, "a failed multi-slot booking changed a slot");
    assert_eq!(appointment_count(&s).await, 0);
    // b is booked by someone else: same.
    release(&s, c, Some(&token_c)).await.expect_status(200);
    book_ok(&s, &appointment(&w.bert, &[b]), &[]).await;
    let before = slot_versions(&s).await;
    assert_book_rejected(&book(&s, &appointment(&w.anna, &[a, b, c]), &[]).await, b, 1);
    assert_eq!(slot_versions(&s).await, before);
    assert_eq!(appointment_count(&s).await, 1);
    // All free (contiguous, listed in any order): every slot becomes busy; start/end span them.
    let booked = book_ok(&s, &appointment(&w.anna, &[&w.slots[3], c]), &[]).await;
    for id in [c, &w.slots[3]] {
        assert_eq!(slot_status(&s, id).await, "busy", "Slot/{id}");
    }
    assert_eq!(slot_status(&s, a).await, "free");
    assert_eq!(booked["start"], slot_times(2).0.as_str(), "start = earliest slot start");
    assert_eq!(booked["end"], slot_times(3).1.as_str(), "end = latest slot end");
    // An appointment listing a slot twice is refused (issue 12).
    put_resource(&s, &slot_resource("slot-twice", &w.schedule, 9, "free")).await;
    book(&s, &appointment(&w.anna, &["slot-twice", "slot-twice"]), &[]).await.outcome(422);
    assert_eq!(slot_status(&s, "slot-twice").await, "free");
}

#[tokio::test]
async fn repeating_a_booking_with_the_same_identifier_returns_the_first() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["identifier"] = json!([{"system": "urn:termin:test:booking", "value": "req-42"}]);
    let r1 = book(&s, &a, &[]).await.expect_status(201);
    let first = param_resource(&r1.json(), "appointment");
    // The same request again: 200 with the earlier booking, nothing new.
    let r2 = book(&s, &a, &[]).await.expect_status(200);
    let body = r2.json();
    let again = param_resource(&body, "appointment");
    assert_eq!(id_of(&again), id_of(&first));
    assert_eq!(again["status"], "booked");
    param_resource(&body, "outcome");
    // A request naming another slot is no repeat (issue 12): 409, and slot-1 stays free.
    let mut other = a.clone();
    other["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}]);
    book(&s, &other, &[]).await.outcome(409);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    assert_eq!(appointment_count(&s).await, 1);
    assert_eq!(s.history_len("Appointment", &id_of(&first)).await, 1);
}

#[tokio::test]
async fn unmet_preconditions_are_422_and_change_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = w.slots[0].as_str();
    put_resource(&s, &service_resource("hcs-closed", false, false)).await;
    put_resource(&s, &schedule_resource("sch-closed", false, false)).await;
    put_resource(&s, &slot_resource("slot-closed", "sch-closed", 4, "free")).await;
    put_resource(&s, &slot_resource("slot-orphan", "sch-missing", 5, "free")).await;
    // A second patient with Anna's SVNR makes that identifier ambiguous (used last).
    let before = slot_versions(&s).await;

    let base = || appointment(&w.anna, &[slot]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut a = base();
        f(&mut a);
        a
    };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "unknown patient",
            with(&|a| a["subject"] = json!({"reference": "Patient/nobody"})),
            "Appointment.subject",
            "not-found",
        ),
        (
            "subject is not a Patient",
            with(&|a| a["subject"] = json!({"reference": "Practitioner/prac-melanie"})),
            "Appointment.subject",
            "value",
        ),
        (
            "subject is a Group (the profile allows it; not served)",
            with(&|a| a["subject"] = json!({"reference": "Group/g1"})),
            "Appointment.subject",
            "not-supported",
        ),
        (
            "no subject",
            with(&|a| {
                a.as_object_mut().unwrap().remove("subject");
            }),
            "Appointment.subject",
            "required",
        ),
        (
            "unknown SVNR",
            with(&|a| a["subject"] = json!({"identifier": {"system": SVNR_SYSTEM, "value": "9999010199"}})),
            "Appointment.subject.identifier",
            "not-found",
        ),
        (
            "unknown HealthcareService",
            with(&|a| a["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/nope"})),
            "Appointment.serviceType[0].reference",
            "not-found",
        ),
        (
            "inactive HealthcareService",
            with(&|a| a["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/hcs-closed"})),
            "Appointment.serviceType[0].reference",
            "business-rule",
        ),
        (
            "unknown slot",
            with(&|a| a["slot"] = json!([{"reference": format!("Slot/{slot}")}, {"reference": "Slot/nope"}])),
            "Appointment.slot[1]",
            "not-found",
        ),
        // Without slots a $book is a booking request (ig_second_pass_book.rs); one to no service:
        (
            "no slot and no HealthcareService",
            with(&|a| {
                a["slot"] = json!([]);
                a.as_object_mut().unwrap().remove("serviceType");
            }),
            "Appointment.slot",
            "required",
        ),
        (
            "slot of an inactive schedule",
            with(&|a| a["slot"] = json!([{"reference": "Slot/slot-closed"}])),
            "Appointment.slot[0]",
            "business-rule",
        ),
        (
            "slot of an unknown schedule",
            with(&|a| a["slot"] = json!([{"reference": "Slot/slot-orphan"}])),
            "Appointment.slot[0]",
            "business-rule",
        ),
        (
            "start disagrees with the slot",
            with(&|a| a["start"] = json!("2030-01-07T00:05:00Z")),
            "Appointment.start",
            "business-rule",
        ),
        (
            "end disagrees with the slot",
            with(&|a| {
                a["start"] = json!(slot_times(0).0);
                a["end"] = json!("2030-01-07T01:00:00Z");
            }),
            "Appointment.end",
            "business-rule",
        ),
        ("status booked", with(&|a| a["status"] = json!("booked")), "Appointment.status", "business-rule"),
        ("status pending", with(&|a| a["status"] = json!("pending")), "Appointment.status", "business-rule"),
        (
            "no status",
            with(&|a| {
                a.as_object_mut().unwrap().remove("status");
            }),
            "Appointment.status",
            "business-rule",
        ),
    ];
    for (what, appt, expression, code) in cases {
        let r = book(&s, &appt, &[]).await;
        assert_eq!(r.code(), 422, "{what}: {}: {}", r.what(), r.text());
        let o = assert_unprocessable(&r, expression);
        assert_issue_code(&o, code);
        assert_eq!(slot_versions(&s).await, before, "{what}: a slot changed");
        assert_eq!(appointment_count(&s).await, 0, "{what}: an appointment was stored");
    }

    // Ambiguous SVNR: two patients carry it.
    let mut twin = patient(SVNR_SYSTEM, "1234010180", "Zwilling");
    twin["id"] = json!("pat-twin");
    put_resource(&s, &twin).await;
    let a = with(&|a| a["subject"] = json!({"identifier": {"system": SVNR_SYSTEM, "value": "1234010180"}}));
    let o = assert_unprocessable(&book(&s, &a, &[]).await, "Appointment.subject.identifier");
    assert_issue_code(&o, "multiple-matches");
    assert_eq!(slot_versions(&s).await, before);
}

#[tokio::test]
async fn subject_by_social_security_number_is_resolved_to_a_reference() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["subject"] = json!({"identifier": {"system": SVNR_SYSTEM, "value": "1234010180"}, "display": "Anna Huber"});
    let booked = book_ok(&s, &a, &[]).await;
    assert_eq!(booked["subject"]["reference"], "Patient/pat-anna");
    assert_eq!(booked["subject"]["identifier"]["value"], "1234010180", "the identifier is kept");
    assert_eq!(s.read("Appointment", &id_of(&booked)).await["subject"]["reference"], "Patient/pat-anna");
}

#[tokio::test]
async fn malformed_book_requests_are_400() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let before = slot_versions(&s).await;
    // Not Parameters (nor an Appointment).
    s.post("Appointment/$book", &json!({"resourceType": "Patient"})).await.outcome(400);
    // Parameters without appointment-resource.
    let o = s
        .post("Appointment/$book", &json!({"resourceType": "Parameters", "parameter": [{"name": "hold-token", "valueString": "x"}]}))
        .await
        .outcome(400);
    assert!(expressions(&o).iter().any(|e| e.contains("appointment-resource")), "{o}");
    // appointment-resource that is not an Appointment.
    let p = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource", "resource": {"resourceType": "Patient"}}]});
    s.post("Appointment/$book", &p).await.outcome(400);
    assert_eq!(slot_versions(&s).await, before);
    assert_eq!(appointment_count(&s).await, 0);
    // A bare Appointment body is read as the appointment-resource (Termin leniency).
    let r = s.post("Appointment/$book", &appointment(&w.anna, &[&w.slots[0]])).await.expect_status(201);
    assert_eq!(param_resource(&r.json(), "appointment")["status"], "booked");
}

#[tokio::test]
async fn manual_confirmation_on_the_schedule_makes_bookings_pending() {
    let s = TestServer::start().await;
    let w = setup(&s, 0).await;
    put_resource(&s, &schedule_resource("sch-confirm", true, true)).await;
    for i in 0..2 {
        put_resource(&s, &slot_resource(&format!("c-{i}"), "sch-confirm", i, "free")).await;
    }
    let r = book(&s, &appointment(&w.anna, &["c-0"]), &[]).await.expect_status(202);
    let body = r.json();
    let appt = param_resource(&body, "appointment");
    assert_eq!(appt["status"], "pending");
    let id = id_of(&appt);
    assert!(r.require_header("location").contains(&format!("Appointment/{id}")));
    param_resource(&body, "outcome");
    assert_eq!(s.read("Appointment", &id).await["status"], "pending");
    // The slot stays reserved: busy, not holdable, not bookable by others.
    assert_eq!(slot_status(&s, "c-0").await, "busy");
    assert_eq!(hold(&s, "c-0").await.code(), 409);
    assert_book_rejected(&book(&s, &appointment(&w.bert, &["c-0"]), &[]).await, "c-0", 0);

    // Staff confirm: booked, slot still busy.
    let mut confirmed = s.read("Appointment", &id).await;
    confirmed["status"] = json!("booked");
    let r = s.put(&format!("Appointment/{id}"), &confirmed).await.expect_status(200);
    assert_eq!(r.json()["status"], "booked");
    assert_eq!(slot_status(&s, "c-0").await, "busy");
    assert_eq!(all_of_type(&s, "Appointment").await.len(), 1);

    // A second pending booking, declined by staff: the slot is free again.
    let appt = param_resource(&book(&s, &appointment(&w.bert, &["c-1"]), &[]).await.expect_status(202).json(), "appointment");
    assert_eq!(slot_status(&s, "c-1").await, "busy");
    let mut declined = appt.clone();
    declined["status"] = json!("cancelled");
    let r = s.put(&format!("Appointment/{}", id_of(&appt)), &declined).await.expect_status(200);
    let stored = r.json();
    assert_eq!(stored["status"], "cancelled");
    assert!(stored["cancellationDate"].as_str().is_some_and(is_instant_with_offset), "{stored}");
    assert_eq!(slot_status(&s, "c-1").await, "free");
    // And bookable again (still pending: the schedule needs confirmation).
    book(&s, &appointment(&w.anna, &["c-1"]), &[]).await.expect_status(202);
}

#[tokio::test]
async fn manual_confirmation_on_the_healthcare_service_makes_bookings_pending() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    put_resource(&s, &service_resource("hcs-confirm", true, true)).await;
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/hcs-confirm"});
    let r = book(&s, &a, &[]).await.expect_status(202);
    assert_eq!(param_resource(&r.json(), "appointment")["status"], "pending");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy");
    // Without that service the same schedule books straight away.
    book_ok(&s, &appointment(&w.bert, &[&w.slots[1]]), &[]).await;
    // valueBoolean false does not ask for confirmation.
    let mut off = service_resource("hcs-off", true, true);
    off["extension"][0]["valueBoolean"] = json!(false);
    put_resource(&s, &off).await;
    put_resource(&s, &slot_resource("slot-9", &w.schedule, 9, "free")).await;
    let mut a = appointment(&w.anna, &["slot-9"]);
    a["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/hcs-off"});
    book_ok(&s, &a, &[]).await;
}

#[tokio::test]
async fn operation_definitions_and_capability_statement() {
    let s = TestServer::start().await;
    for (id, code, ty, instance) in [("slot-hold", "hold", "Slot", true), ("appointment-book", "book", "Appointment", false)] {
        let r = s.get(&format!("OperationDefinition/{id}")).await.expect_status(200);
        r.assert_fhir_json();
        let od = r.json();
        assert_eq!(od["resourceType"], "OperationDefinition");
        assert_eq!(od["id"], id);
        assert_eq!(od["code"], code);
        assert_eq!(od["resource"], json!([ty]));
        assert_eq!(od["type"], true);
        assert_eq!(od["instance"], instance);
        assert!(
            od["base"].as_str().is_some_and(|b| b.ends_with(&format!("OperationDefinition/{id}"))),
            "base should point to the IG's definition: {od}"
        );
        let names: Vec<&str> = od["parameter"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
        assert!(names.contains(&"hold-token"), "{id}: the hold-token parameter is documented: {names:?}");
        let required: &[&str] = if code == "hold" {
            &["slot-reference", "slot-identifier", "slot-status", "slot", "outcome", "held-until"]
        } else {
            &["appointment-resource", "appointment", "outcome"]
        };
        for n in required {
            assert!(names.contains(n), "{id}: parameter {n} missing: {names:?}");
        }
    }
    s.get("OperationDefinition/no-such-operation").await.outcome(404);

    let cs = s.get("metadata").await.expect_status(200).json();
    let resources = cs["rest"][0]["resource"].as_array().expect("rest[0].resource");
    for (ty, code) in [("Slot", "hold"), ("Appointment", "book")] {
        let r = resources.iter().find(|r| r["type"] == ty).unwrap_or_else(|| panic!("{ty} not in CapabilityStatement"));
        let op = r["operation"]
            .as_array()
            .and_then(|ops| ops.iter().find(|o| o["name"] == code))
            .unwrap_or_else(|| panic!("{ty} does not list operation {code}: {r}"));
        assert!(op["definition"].as_str().is_some_and(|d| !d.is_empty()), "{op}");
    }
    // Unknown operations are 404.
    s.post("Slot/$nope", &json!({"resourceType": "Parameters"})).await.outcome(404);
    s.post("Appointment/a1/$book", &book_request(&json!({"resourceType": "Appointment"}), &[])).await.outcome(404);
}

// ---------------------------------------------------------------------------------------------
// Rejection alternatives and the published OperationDefinitions. (Profile conformance of the
// $book input is tested in validation.rs, where the server runs with the FHIR packages.)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rejection_lists_free_alternative_slots() {
    let s = TestServer::start().await;
    let w = setup(&s, 8).await;
    let slot = &w.slots[3];
    book_ok(&s, &appointment(&w.anna, &[slot]), &[]).await;
    let r = book(&s, &appointment(&w.bert, &[slot]), &[]).await;
    assert_eq!(r.code(), 409, "{}", r.text());
    let text = r.text();
    let free: Vec<&String> = w.slots.iter().filter(|id| *id != slot).collect();
    let named: Vec<&&String> = free.iter().filter(|id| text.contains(&format!("Slot/{id}\""))
        || text.contains(&format!("Slot/{id} ")) || text.contains(&format!("Slot/{id},"))).collect();
    assert!(
        !named.is_empty() && named.len() <= 5,
        "the 409 should name 1..=5 free alternative slots of Schedule/{}, named {}: {text}",
        w.schedule,
        named.len()
    );
    // The same alternatives as structured output: `alternative` with parts slot and start.
    let structured: Vec<(String, String)> = r.json()["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "alternative")
        .map(|p| {
            let part = |name: &str| p["part"].as_array().unwrap().iter().find(|q| q["name"] == name).cloned().unwrap();
            (part("slot")["valueReference"]["reference"].as_str().unwrap().to_owned(), part("start")["valueInstant"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(structured.len(), named.len(), "{text}");
    for (reference, start) in &structured {
        let id = reference.strip_prefix("Slot/").unwrap();
        assert!(free.iter().any(|f| *f == id), "{reference} is one of the schedule's free slots");
        assert_eq!(s.read("Slot", id).await["start"].as_str(), Some(start.as_str()));
    }
}

#[tokio::test]
async fn all_three_ig_operation_definitions_are_published() {
    let s = TestServer::start().await;
    for id in ["slot-hold", "appointment-book", "healthcareService-provider-find"] {
        s.get(&format!("OperationDefinition/{id}")).await.expect_status(200);
    }
}
