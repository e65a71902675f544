//! Cancel, postpone and update of Appointments by PUT (and the other generic routes), direct
//! Slot writes that would contradict scheduling, and the IG example flow hold → book →
//! postpone → cancel built from the example resources in the repository's `packages/` (issue 4).

mod scheduling_support;
mod support;

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

async fn put_if_match(s: &TestServer, path: &str, body: &Value, if_match: &str) -> Resp {
    s.send(json_body(s.request(Method::PUT, path), body).header("If-Match", if_match)).await
}

fn postponement_reason(text: &str) -> Value {
    json!({"url": POSTPONEMENT_REASON, "valueCodeableConcept": {"text": text}})
}

/// Books `slots` for Anna and returns the stored Appointment.
async fn booked(s: &TestServer, w: &World, slots: &[&str]) -> Value {
    book_ok(s, &appointment(&w.anna, slots), &[]).await
}

/// (status, versionId) of a Slot.
async fn slot_state(s: &TestServer, id: &str) -> (String, String) {
    let slot = s.read("Slot", id).await;
    (slot["status"].as_str().unwrap_or_default().to_string(), version_id(&slot))
}

async fn slot_states(s: &TestServer, ids: &[String]) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for id in ids {
        v.push(slot_state(s, id).await);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The IG example flow
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ig_example_flow_hold_book_postpone_cancel() {
    let s = TestServer::start().await;
    // The Appointment example is not loaded: it is stored as `booked` and would occupy Slot 01.
    load_ig_examples_with_future_slots(&s).await;
    let appointment_example = package_resources()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r["id"] == "HL7ATSchedulingAppointmentExample01")
        .expect("Appointment-HL7ATSchedulingAppointmentExample01.json in the scheduling package");
    let slot1 = "HL7ATSchedulingSlotExample01-free";
    let slot2 = "HL7ATSchedulingSlotExample02-VirtualVisit";
    for id in [slot1, slot2, "HL7ATSchedulingSlotExample03-selectable-encounterClass", "HL7ATSchedulingSlotExample04-external-booking-URL"] {
        assert_eq!(slot_status(&s, id).await, "free", "example Slot/{id} loads as free");
    }

    // 1. Hold Slot 01 (examples/Slot-operationHold-request.md).
    let r = s
        .post(
            "Slot/$hold",
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot1}")}},
                {"name": "slot-status", "valueCode": "busy-tentative"}]}),
        )
        .await
        .expect_status(200);
    let token1 = token_of(&r.json());
    assert_eq!(slot_status(&s, slot1).await, "busy-tentative");
    // Another client (presenting another token) cannot book the held slot.
    let stranger = {
        let mut a = appointment_example.clone();
        a["status"] = json!("proposed");
        a.as_object_mut().unwrap().remove("start");
        a.as_object_mut().unwrap().remove("end");
        a
    };
    assert_eq!(book(&s, &stranger, &[OTHER_CLIENT]).await.code(), 409);

    // 2. Book the IG Appointment example through the hold. The example is `booked` and its
    // times (2025-06-01T09:00+02:00 .. 09:30) disagree with the slot it references
    // (moved to 2030-09-16T08:00Z .. 09:00Z above), which the server rightly rejects (422, checked below); so
    // the request is the example with status `proposed` and start/end/minutesDuration taken
    // from Slot 01, as examples/Appointment-operationBook-request.md intends.
    let slot1_res = s.read("Slot", slot1).await;
    let mut proposed = appointment_example.clone();
    proposed.as_object_mut().unwrap().remove("id");
    proposed["status"] = json!("proposed");
    let o = book(&s, &proposed, &[&token1]).await.outcome(422);
    assert!(expressions(&o).iter().any(|e| e == "Appointment.start"), "{o}");
    assert_eq!(slot_status(&s, slot1).await, "busy-tentative", "the 422 left the hold alone");
    proposed["start"] = slot1_res["start"].clone();
    proposed["end"] = slot1_res["end"].clone();
    proposed["minutesDuration"] = json!(60);
    let r = book(&s, &proposed, &[&token1]).await.expect_status(201);
    let body = r.json();
    let appt = param_resource(&body, "appointment");
    let id = id_of(&appt);
    assert_ne!(id, "HL7ATSchedulingAppointmentExample01", "the server assigns the id");
    assert_eq!(appt["status"], "booked");
    assert_eq!(appt["description"], "Physiotherapie - Einzelbehandlung 30 Minuten");
    assert_eq!(slot_ids(&appt), vec![slot1.to_string()]);
    assert!(r.require_header("location").contains(&format!("Appointment/{id}")));
    assert_eq!(slot_status(&s, slot1).await, "busy");

    // 3. Postpone to Slot 02 (virtual visit, here an hour later): hold it first, then PUT the
    // Appointment with the new slot and the hold token.
    let token2 = hold_ok(&s, slot2).await;
    let mut moved = s.read("Appointment", &id).await;
    moved["slot"] = json!([{"reference": format!("Slot/{slot2}")}]);
    moved["extension"] = json!([postponement_reason("Patient wünscht Videotermin")]);
    let r = put_with_tokens(&s, &format!("Appointment/{id}"), &moved, &[&token2]).await.expect_status(200);
    let after_move = r.json();
    assert_eq!(after_move["status"], "booked");
    assert_eq!(slot_ids(&after_move), vec![slot2.to_string()]);
    assert_eq!(after_move["extension"][0]["url"], POSTPONEMENT_REASON, "postponementReason is kept");
    assert_eq!(slot_status(&s, slot1).await, "free", "the old slot is freed");
    assert_eq!(slot_status(&s, slot2).await, "busy", "the new slot is taken");
    // The hold on Slot 02 was consumed by the postponement.
    assert_eq!(release(&s, slot2, Some(&token2)).await.code(), 409);

    // 4. Cancel.
    let before_cancel = Timestamp::now();
    let mut cancelled = after_move.clone();
    cancelled["status"] = json!("cancelled");
    cancelled["cancellationReason"] = json!({"text": "Patient verhindert"});
    let r = s.put(&format!("Appointment/{id}"), &cancelled).await.expect_status(200);
    let stored = r.json();
    assert_eq!(stored["status"], "cancelled");
    let date = stored["cancellationDate"].as_str().expect("cancellationDate set by the server");
    assert!(is_instant_with_offset(date), "{date}");
    let date: Timestamp = date.parse().unwrap();
    assert!(date >= before_cancel - SignedDuration::from_secs(1), "cancellationDate {date} predates the request");
    assert_eq!(slot_status(&s, slot1).await, "free");
    assert_eq!(slot_status(&s, slot2).await, "free");
    assert_eq!(s.history_len("Appointment", &id).await, 3, "book, postpone, cancel");

    // Nothing left occupied or held.
    let (slots, appointments) = assert_invariant(&s, &BTreeSet::new()).await;
    assert!(slots.values().all(|s| s["status"] == "free"), "{slots:?}");
    assert_eq!(appointments.len(), 1);
    // The freed slot can be booked again by the IG example's patient.
    book(&s, &proposed, &[]).await.expect_status(201);
}

// ---------------------------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancel_frees_every_slot_and_the_server_sets_cancellation_date() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let appt = booked(&s, &w, &[&w.slots[0], &w.slots[1]]).await;
    let id = id_of(&appt);
    let before = Timestamp::now();
    let mut c = appt.clone();
    c["status"] = json!("cancelled");
    c["cancellationDate"] = json!("2000-01-01T00:00:00Z");
    let stored = s.put(&format!("Appointment/{id}"), &c).await.expect_status(200).json();
    assert_eq!(stored["status"], "cancelled");
    let date = stored["cancellationDate"].as_str().expect("cancellationDate");
    assert_ne!(date, "2000-01-01T00:00:00Z", "the server, not the client, sets cancellationDate");
    assert!(date.parse::<Timestamp>().unwrap() >= before - SignedDuration::from_secs(1));
    assert_eq!(s.read("Appointment", &id).await, stored);
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[2]).await, "free");
    // Another patient can book them now.
    book_ok(&s, &appointment(&w.bert, &[&w.slots[0], &w.slots[1]]), &[]).await;
    assert_invariant(&s, &BTreeSet::new()).await;
}

#[tokio::test]
async fn entered_in_error_frees_the_slots_too() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let mut e = appt.clone();
    e["status"] = json!("entered-in-error");
    let stored = s.put(&format!("Appointment/{}", id_of(&appt)), &e).await.expect_status(200).json();
    assert_eq!(stored["status"], "entered-in-error");
    assert!(stored["cancellationDate"].as_str().is_some_and(is_instant_with_offset), "{stored}");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
}

#[tokio::test]
async fn a_cancelled_appointment_cannot_change() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    let mut c = appt.clone();
    c["status"] = json!("cancelled");
    let cancelled = s.put(&format!("Appointment/{id}"), &c).await.expect_status(200).json();
    let slot_before = slot_state(&s, &w.slots[0]).await;
    let attempts: Vec<(&str, Value)> = vec![
        ("description", {
            let mut a = cancelled.clone();
            a["description"] = json!("doch noch");
            a
        }),
        ("revive as booked", {
            let mut a = cancelled.clone();
            a["status"] = json!("booked");
            a
        }),
        ("revive as proposed on another slot", {
            let mut a = cancelled.clone();
            a["status"] = json!("proposed");
            a["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}]);
            a
        }),
    ];
    for (what, body) in attempts {
        let o = s.put(&format!("Appointment/{id}"), &body).await.outcome(422);
        assert!(expressions(&o).iter().any(|e| e == "Appointment.status"), "{what}: {o}");
        assert_eq!(s.read("Appointment", &id).await, cancelled, "{what}: the cancelled appointment changed");
    }
    assert_eq!(slot_state(&s, &w.slots[0]).await, slot_before);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
}

#[tokio::test]
async fn if_match_guards_cancel_and_postpone() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    let path = format!("Appointment/{id}");
    // Version 2: a harmless update.
    let mut v2 = appt.clone();
    v2["description"] = json!("Bitte Handtuch mitbringen");
    let v2 = s.put(&path, &v2).await.expect_status(200).json();
    assert_eq!(version_id(&v2), "2");
    let slots_before = (slot_state(&s, &w.slots[0]).await, slot_state(&s, &w.slots[1]).await);
    // Stale If-Match: 412, nothing changes.
    let mut cancel = v2.clone();
    cancel["status"] = json!("cancelled");
    put_if_match(&s, &path, &cancel, "W/\"1\"").await.outcome(412);
    let mut postpone = v2.clone();
    postpone["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}]);
    put_if_match(&s, &path, &postpone, "W/\"1\"").await.outcome(412);
    assert_eq!(s.read("Appointment", &id).await, v2);
    assert_eq!((slot_state(&s, &w.slots[0]).await, slot_state(&s, &w.slots[1]).await), slots_before);
    // Current If-Match: the postponement and then the cancellation go through.
    let v3 = put_if_match(&s, &path, &postpone, "W/\"2\"").await.expect_status(200).json();
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");
    let mut cancel = v3.clone();
    cancel["status"] = json!("cancelled");
    put_if_match(&s, &path, &cancel, "W/\"3\"").await.expect_status(200);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    // DELETE with a stale If-Match changes nothing either.
    let other = booked(&s, &w, &[&w.slots[0]]).await;
    s.send(s.request(Method::DELETE, &format!("Appointment/{}", id_of(&other))).header("If-Match", "W/\"7\""))
        .await
        .outcome(412);
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy");
}

// ---------------------------------------------------------------------------------------------
// Postpone
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn postpone_to_a_free_slot_moves_the_booking() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    let (start, end) = slot_times(2);
    let mut moved = appt.clone();
    moved["slot"] = json!([{"reference": format!("Slot/{}", w.slots[2])}]);
    moved["start"] = json!(start);
    moved["end"] = json!(end);
    moved["extension"] = json!([postponement_reason("Praxis geschlossen")]);
    let stored = s.put(&format!("Appointment/{id}"), &moved).await.expect_status(200).json();
    assert_eq!(stored["status"], "booked");
    assert_eq!(stored["start"], start.as_str());
    assert_eq!(stored["extension"], json!([postponement_reason("Praxis geschlossen")]));
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[2]).await, "busy");
    // Extending to two slots and shrinking back.
    let mut longer = stored.clone();
    longer["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}, {"reference": format!("Slot/{}", w.slots[2])}]);
    longer["start"] = json!(slot_times(1).0);
    let longer = s.put(&format!("Appointment/{id}"), &longer).await.expect_status(200).json();
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");
    assert_eq!(slot_status(&s, &w.slots[2]).await, "busy");
    let mut shorter = longer.clone();
    shorter["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}]);
    shorter["end"] = json!(slot_times(1).1);
    s.put(&format!("Appointment/{id}"), &shorter).await.expect_status(200);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");
    assert_eq!(slot_status(&s, &w.slots[2]).await, "free");
    assert_invariant(&s, &BTreeSet::new()).await;
}

#[tokio::test]
async fn postpone_onto_a_taken_slot_is_409_and_changes_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 4).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    // slot-1 held by someone else, slot-2 booked by someone else, slot-3 blocked by staff.
    let foreign_token = hold_ok(&s, &w.slots[1]).await;
    book_ok(&s, &appointment(&w.bert, &[&w.slots[2]]), &[]).await;
    put_resource(&s, &slot_resource(&w.slots[3], &w.schedule, 3, "busy-unavailable")).await;
    let before = slot_states(&s, &w.slots).await;
    for target in [vec![1], vec![2], vec![3], vec![0, 1], vec![1, 2]] {
        let mut moved = appt.clone();
        moved["slot"] = json!(target.iter().map(|i| json!({"reference": format!("Slot/{}", w.slots[*i])})).collect::<Vec<_>>());
        // The mover is another client than the holder of slot-1: it presents another token.
        let o = put_with_tokens(&s, &format!("Appointment/{id}"), &moved, &[OTHER_CLIENT]).await.outcome(409);
        assert_issue_code(&o, "conflict");
        assert!(expressions(&o).iter().any(|e| e.starts_with("Appointment.slot")), "{target:?}: {o}");
        assert_eq!(s.read("Appointment", &id).await, appt, "{target:?}: the appointment changed");
        assert_eq!(slot_states(&s, &w.slots).await, before, "{target:?}: a slot changed");
    }
    // A wrong token does not help; the holder's token does (it is the holder who moves).
    let mut moved = appt.clone();
    moved["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}]);
    put_with_tokens(&s, &format!("Appointment/{id}"), &moved, &["forged"]).await.outcome(409);
    let stored = put_with_tokens(&s, &format!("Appointment/{id}"), &moved, &[&foreign_token])
        .await
        .expect_status(200)
        .json();
    assert_eq!(slot_ids(&stored), vec![w.slots[1].clone()]);
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");
    assert_invariant(&s, &BTreeSet::new()).await;
}

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn other_elements_change_freely_without_touching_slots() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    put_resource(&s, &json!({"resourceType": "Practitioner", "id": "prac-other", "name": [{"family": "Vertretung"}]})).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    let slot_before = slot_state(&s, &w.slots[0]).await;
    let mut u = appt.clone();
    u["description"] = json!("Physiotherapie - Doppelstunde");
    u["note"] = json!([{"text": "Bitte 10 Minuten früher kommen"}]);
    u["patientInstruction"] = json!([{"concept": {"text": "Bequeme Kleidung"}}]);
    u["priority"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority", "code": "R"}]});
    u["participant"][1]["actor"] = json!({"reference": "Practitioner/prac-other"});
    u["participant"].as_array_mut().unwrap().push(json!({"actor": {"reference": "Practitioner/prac-melanie"}, "status": "tentative"}));
    let stored = s.put(&format!("Appointment/{id}"), &u).await.expect_status(200).json();
    assert_eq!(stored["status"], "booked");
    assert_eq!(stored["description"], u["description"]);
    assert_eq!(stored["participant"], u["participant"]);
    assert_eq!(slot_state(&s, &w.slots[0]).await, slot_before, "a plain update touched the slot");
}

#[tokio::test]
async fn patient_subject_and_service_type_cannot_change() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    put_resource(&s, &service_resource("hcs-other", true, false)).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    let slot_before = slot_state(&s, &w.slots[0]).await;
    let change = |f: &dyn Fn(&mut Value)| {
        let mut a = appt.clone();
        f(&mut a);
        a
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("subject", change(&|a| a["subject"] = json!({"reference": "Patient/pat-bert"})), "Appointment.subject"),
        (
            "participant Patient",
            change(&|a| a["participant"][0]["actor"] = json!({"reference": "Patient/pat-bert"})),
            "Appointment.participant",
        ),
        (
            "participant Patient removed",
            change(&|a| {
                a["participant"].as_array_mut().unwrap().remove(0);
            }),
            "Appointment.participant",
        ),
        (
            "serviceType reference",
            change(&|a| a["serviceType"][0]["reference"] = json!({"reference": "HealthcareService/hcs-other"})),
            "Appointment.serviceType",
        ),
        (
            "serviceType concept",
            change(&|a| a["serviceType"][0]["concept"]["coding"][0]["code"] = json!("57")),
            "Appointment.serviceType",
        ),
    ];
    for (what, body, expression) in cases {
        let o = s.put(&format!("Appointment/{id}"), &body).await.outcome(422);
        assert!(
            expressions(&o).iter().any(|e| e.starts_with(expression)),
            "{what}: expected an issue at {expression}: {o}"
        );
        assert_eq!(s.read("Appointment", &id).await, appt, "{what}: the appointment changed");
        assert_eq!(slot_state(&s, &w.slots[0]).await, slot_before, "{what}: the slot changed");
    }
}

// ---------------------------------------------------------------------------------------------
// Delete, other write routes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_an_active_appointment_frees_its_slots() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let appt = booked(&s, &w, &[&w.slots[0], &w.slots[1]]).await;
    s.delete(&format!("Appointment/{}", id_of(&appt))).await.expect_status(204);
    s.get(&format!("Appointment/{}", id_of(&appt))).await.outcome(410);
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    book_ok(&s, &appointment(&w.bert, &[&w.slots[0]]), &[]).await;
    // Deleting a cancelled appointment changes no slot.
    let mut c = s.read("Appointment", &id_of(&book_ok(&s, &appointment(&w.anna, &[&w.slots[1]]), &[]).await)).await;
    c["status"] = json!("cancelled");
    let c = s.put(&format!("Appointment/{}", id_of(&c)), &c).await.expect_status(200).json();
    book_ok(&s, &appointment(&w.bert, &[&w.slots[1]]), &[]).await;
    s.delete(&format!("Appointment/{}", id_of(&c))).await.expect_status(204);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy", "deleting a cancelled appointment freed another's slot");
    assert_invariant(&s, &BTreeSet::new()).await;
}

#[tokio::test]
async fn plain_create_and_update_of_appointments_cannot_bypass_scheduling() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let booked_appt = |slots: &[&str]| {
        let mut a = appointment(&w.anna, slots);
        a["status"] = json!("booked");
        a
    };
    // POST of a booked Appointment takes its slot like $book would.
    let created = s.create(&booked_appt(&[&w.slots[0]])).await;
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy");
    // A second one on the same slot: 409, not stored.
    let o = s.post("Appointment", &booked_appt(&[&w.slots[0]])).await.outcome(409);
    assert_issue_code(&o, "conflict");
    // PUT-as-create on a taken slot: 409, not stored.
    let mut a = booked_appt(&[&w.slots[0]]);
    a["id"] = json!("appt-by-put");
    s.put("Appointment/appt-by-put", &a).await.outcome(409);
    s.get("Appointment/appt-by-put").await.outcome(404);
    // On a held slot by another client: 409; with the holder's token: 201.
    let token = hold_ok(&s, &w.slots[1]).await;
    let mut a = booked_appt(&[&w.slots[1]]);
    a["id"] = json!("appt-held");
    put_with_tokens(&s, "Appointment/appt-held", &a, &[OTHER_CLIENT]).await.outcome(409);
    put_with_tokens(&s, "Appointment/appt-held", &a, &[&token]).await.expect_status(201);
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");
    // A proposed Appointment stored by POST does not occupy its slot.
    s.create(&appointment(&w.bert, &[&w.slots[2]])).await;
    assert_eq!(slot_status(&s, &w.slots[2]).await, "free");
    let all = all_of_type(&s, "Appointment").await;
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.contains_key(&id_of(&created)));
    assert_invariant(&s, &BTreeSet::new()).await;
}

#[tokio::test]
async fn conditional_update_cancels_like_put() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let mut a = appointment(&w.anna, &[&w.slots[0]]);
    a["identifier"] = json!([{"system": "urn:termin:test:booking", "value": "cond-1"}]);
    let appt = book_ok(&s, &a, &[]).await;
    let mut c = appt.clone();
    c["status"] = json!("cancelled");
    c.as_object_mut().unwrap().remove("id");
    let stored = s
        .put("Appointment?identifier=urn:termin:test:booking|cond-1", &c)
        .await
        .expect_status(200)
        .json();
    assert_eq!(id_of(&stored), id_of(&appt));
    assert_eq!(stored["status"], "cancelled");
    assert!(stored["cancellationDate"].is_string());
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
}

// ---------------------------------------------------------------------------------------------
// Direct Slot writes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn direct_slot_writes_cannot_contradict_a_booking() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    booked(&s, &w, &[slot]).await;
    let before = slot_state(&s, slot).await;
    let mut attempts: Vec<(&str, Value)> = Vec::new();
    for status in ["free", "busy-unavailable", "busy-tentative", "entered-in-error"] {
        let mut v = slot_resource(slot, &w.schedule, 0, status);
        if status == "free" {
            v["comment"] = json!("free again");
        }
        attempts.push(("status change", v));
    }
    let mut moved = slot_resource(slot, &w.schedule, 1, "busy");
    moved["comment"] = json!("start and end moved");
    attempts.push(("start/end change", moved));
    put_resource(&s, &schedule_resource("sch-other", true, false)).await;
    attempts.push(("schedule change", slot_resource(slot, "sch-other", 0, "busy")));
    for (what, body) in attempts {
        let r = s.put(&format!("Slot/{slot}"), &body).await;
        let o = r.outcome(409);
        assert_issue_code(&o, "conflict");
        assert_eq!(slot_state(&s, slot).await, before, "{what}: the booked slot changed");
    }
    // DELETE of a booked slot: 409.
    s.delete(&format!("Slot/{slot}")).await.outcome(409);
    assert_eq!(slot_state(&s, slot).await, before);
    // Other elements may change while it stays busy.
    let mut comment = slot_resource(slot, &w.schedule, 0, "busy");
    comment["comment"] = json!("Raum 3");
    let stored = s.put(&format!("Slot/{slot}"), &comment).await.expect_status(200).json();
    assert_eq!(stored["status"], "busy");
    assert_eq!(stored["comment"], "Raum 3");
    assert_invariant(&s, &BTreeSet::new()).await;
}

#[tokio::test]
async fn busy_and_busy_tentative_are_reached_only_through_scheduling() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    for status in ["busy", "busy-tentative"] {
        // PUT of a fresh slot, PUT of an existing free slot, POST.
        let o = s.put("Slot/fresh", &slot_resource("fresh", &w.schedule, 10, status)).await.outcome(422);
        assert!(expressions(&o).iter().any(|e| e == "Slot.status"), "{o}");
        s.get("Slot/fresh").await.outcome(404);
        let before = slot_state(&s, &w.slots[0]).await;
        s.put(&format!("Slot/{}", w.slots[0]), &slot_resource(&w.slots[0], &w.schedule, 0, status)).await.outcome(422);
        assert_eq!(slot_state(&s, &w.slots[0]).await, before);
        let mut posted = slot_resource("x", &w.schedule, 11, status);
        posted.as_object_mut().unwrap().remove("id");
        s.post("Slot", &posted).await.outcome(422);
    }
    assert_eq!(all_of_type(&s, "Slot").await.len(), 2, "a rejected slot write was stored");
    // Staff block and unblock time with busy-unavailable.
    let slot = &w.slots[1];
    put_resource(&s, &slot_resource(slot, &w.schedule, 1, "busy-unavailable")).await;
    assert_eq!(book(&s, &appointment(&w.anna, &[slot]), &[]).await.code(), 409);
    put_resource(&s, &slot_resource(slot, &w.schedule, 1, "free")).await;
    book_ok(&s, &appointment(&w.anna, &[slot]), &[]).await;
    // A free, unbooked slot may be deleted.
    s.delete(&format!("Slot/{}", w.slots[0])).await.expect_status(204);
}

// ---------------------------------------------------------------------------------------------
// Not implemented
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancel_by_json_patch_frees_the_slot() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let patch = json!([{"op": "replace", "path": "/status", "value": "cancelled"}]);
    let r = s
        .send(
            s.request(Method::PATCH, &format!("Appointment/{}", id_of(&appt)))
                .header("Content-Type", "application/json-patch+json")
                .body(serde_json::to_vec(&patch).unwrap()),
        )
        .await
        .expect_status(200);
    assert_eq!(r.json()["status"], "cancelled");
    assert!(r.json()["cancellationDate"].is_string());
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
}

#[tokio::test]
async fn postponement_keeps_start_end_and_slots_in_agreement() {
    // Issue 4: "a change of start/end/minutesDuration/slot moves the Appointment atomically".
    // $book requires start/end to agree with the slots (422 otherwise); a postponement by PUT
    // should not be able to produce an Appointment that $book would have refused: either it is
    // rejected and nothing changes, or the slots covering the new time are taken.
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let appt = booked(&s, &w, &[&w.slots[0]]).await;
    let id = id_of(&appt);
    let agrees = |a: &Value, slot: usize| {
        let (start, end) = slot_times(slot);
        slot_ids(a) == vec![w.slots[slot].clone()] && a["start"] == start.as_str() && a["end"] == end.as_str()
    };
    // Only start/end move to slot-1's time.
    let (start, end) = slot_times(1);
    let mut time_only = appt.clone();
    time_only["start"] = json!(start);
    time_only["end"] = json!(end);
    // Only the slot moves to slot-1, start/end stay at slot-0's time.
    let mut slot_only = appt.clone();
    slot_only["slot"] = json!([{"reference": format!("Slot/{}", w.slots[1])}]);
    for (what, body) in [("start/end only", time_only), ("slot only", slot_only)] {
        let r = s.put(&format!("Appointment/{id}"), &body).await;
        let now = s.read("Appointment", &id).await;
        let consistent = if r.code() < 300 {
            // Accepted: the appointment must occupy the slot covering its new time, only that.
            agrees(&now, 1)
                && slot_status(&s, &w.slots[1]).await == "busy"
                && slot_status(&s, &w.slots[0]).await == "free"
        } else {
            now == appt && slot_status(&s, &w.slots[0]).await == "busy"
        };
        assert!(
            consistent,
            "{what}: PUT answered {} and left Appointment {now} with Slot/slot-0 {} and Slot/slot-1 {}",
            r.code(),
            slot_status(&s, &w.slots[0]).await,
            slot_status(&s, &w.slots[1]).await
        );
        // Reset for the next case (a postponement back onto slot-0, consistent).
        if now != appt {
            let mut back = now.clone();
            back["slot"] = json!([{"reference": format!("Slot/{}", w.slots[0])}]);
            back["start"] = appt["start"].clone();
            back["end"] = appt["end"].clone();
            s.put(&format!("Appointment/{id}"), &back).await.expect_status(200);
        }
    }
}
