//! Regression tests for the scheduling defects of issue 12 (hardening): cancellation policy
//! values, policy bypasses, hold limits, `$book` idempotency and the slot rules of `$book`,
//! postponement and Slot writes. Everything talks HTTP to the real binary.

mod scheduling_support;
mod support;

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

const CANCELLATION_POLICY: &str =
    "https://fhir.hl7.at/tc/wg/scheduling/r5/StructureDefinition/at-scheduling-ext-cancellationPolicy";

fn cancellation_policy(value: Value, code: &str) -> Value {
    json!([{
        "url": CANCELLATION_POLICY,
        "extension": [{"url": "cancelUntil", "valueDuration": {"value": value, "system": "http://unitsofmeasure.org", "code": code}}]
    }])
}

async fn patch(s: &TestServer, path: &str, operations: &Value) -> Resp {
    s.send(
        s.request(Method::PATCH, path)
            .header("Content-Type", "application/json-patch+json")
            .body(serde_json::to_vec(operations).unwrap()),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Item 4: cancellation policy values
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancellation_policy_values_out_of_range_are_refused_on_every_write() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot_id = &w.slots[0];
    let huge = [
        (json!(99999999999999999_u64), "wk"),
        (json!(1e300), "s"),
        (json!(1e18), "s"),
        (json!(-1), "h"),
        (json!("NaN"), "h"),
        (json!(400), "d"),
    ];
    for (value, code) in huge {
        let what = format!("{value} {code}");
        let mut slot = s.read("Slot", slot_id).await;
        slot["extension"] = cancellation_policy(value.clone(), code);
        let outcome = s.put(&format!("Slot/{slot_id}"), &slot).await.outcome(422);
        assert_eq!(expressions(&outcome), ["Slot.extension[0].extension[0].valueDuration"], "{what}: {outcome}");

        let mut created = slot_resource("slot-new", &w.schedule, 40, "free");
        created.as_object_mut().unwrap().remove("id");
        created["extension"] = cancellation_policy(value.clone(), code);
        s.post("Slot", &created).await.outcome(422);

        let add = json!([{"op": "add", "path": "/extension", "value": cancellation_policy(value.clone(), code)}]);
        patch(&s, &format!("Slot/{slot_id}"), &add).await.outcome(422);

        let mut service = s.read("HealthcareService", &w.service).await;
        service["extension"] = cancellation_policy(value.clone(), code);
        let outcome = s.put(&format!("HealthcareService/{}", w.service), &service).await.outcome(422);
        assert_eq!(
            expressions(&outcome),
            ["HealthcareService.extension[0].extension[0].valueDuration"],
            "{what}: {outcome}"
        );
        patch(&s, &format!("HealthcareService/{}", w.service), &add).await.outcome(422);
    }
    assert_eq!(s.history_len("Slot", slot_id).await, 1, "no refused write is stored");
    assert_eq!(s.history_len("HealthcareService", &w.service).await, 1);

    // A year is the longest policy accepted; the slot (2030) is further away than that.
    let mut slot = s.read("Slot", slot_id).await;
    slot["extension"] = cancellation_policy(json!(52), "wk");
    s.put(&format!("Slot/{slot_id}"), &slot).await.expect_status(200);
    let appt = book_ok(&s, &appointment(&w.anna, &[slot_id]), &[]).await;
    let mut cancel = appt.clone();
    cancel["status"] = json!("cancelled");
    let cancelled = s.put(&format!("Appointment/{}", id_of(&appt)), &cancel).await.expect_status(200).json();
    assert_eq!(cancelled["status"], "cancelled");
}

// ---------------------------------------------------------------------------------------------
// Item 7: `$book` idempotency only for true repeats
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn book_identifier_of_another_booking_is_a_conflict_and_leaks_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    let identifier = json!([{"system": "urn:termin:test:booking", "value": "req-1"}]);
    let mut request = appointment(&w.anna, &[&w.slots[0]]);
    request["identifier"] = identifier.clone();
    let first = book_ok(&s, &request, &[]).await;
    let first_id = id_of(&first);

    // The same request again (subject by identifier this time) is a repeat.
    let mut repeat = request.clone();
    repeat["subject"] = json!({"identifier": {"system": SVNR_SYSTEM, "value": "1234010180"}});
    let again = book(&s, &repeat, &[]).await.expect_status(200).json();
    assert_eq!(id_of(&param_resource(&again, "appointment")), first_id);

    let mut other_patient = appointment(&w.bert, &[&w.slots[1]]);
    other_patient["identifier"] = identifier.clone();
    let mut other_slots = appointment(&w.anna, &[&w.slots[2]]);
    other_slots["identifier"] = identifier;
    for clash in [other_patient, other_slots] {
        let r = book(&s, &clash, &[]).await;
        let outcome = r.outcome(409);
        assert_eq!(expressions(&outcome), ["Appointment.identifier"], "{outcome}");
        let text = r.text();
        assert!(!text.contains(&first_id) && !text.contains(&w.anna), "the answer leaks the other booking: {text}");
    }
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    assert_eq!(slot_status(&s, &w.slots[2]).await, "free");
    assert_eq!(all_of_type(&s, "Appointment").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Item 8: the slots of a booking, and overlapping Slots
// ---------------------------------------------------------------------------------------------

/// A free Slot of `schedule` from `start` for `minutes` minutes (PUT by id).
async fn put_slot(s: &TestServer, id: &str, schedule: &str, start: Timestamp, minutes: i64) -> Resp {
    let slot = json!({"resourceType": "Slot", "id": id, "schedule": {"reference": format!("Schedule/{schedule}")},
        "status": "free", "start": start.to_string(), "end": (start + SignedDuration::from_mins(minutes)).to_string()});
    s.put(&format!("Slot/{id}"), &slot).await
}

/// Asserts a 422 whose expression is `Appointment.slot[position]`.
#[track_caller]
fn assert_slot_refused(r: &Resp, position: usize) {
    let outcome = r.outcome(422);
    assert_eq!(expressions(&outcome), [format!("Appointment.slot[{position}]")], "{outcome}");
}

#[tokio::test]
async fn book_refuses_past_started_foreign_distant_and_repeated_slots() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    put_resource(&s, &schedule_resource("sch-other", true, false)).await;
    let now = Timestamp::now();
    put_slot(&s, "past", &w.schedule, "2025-03-03T08:00:00Z".parse().unwrap(), 30).await.expect_status(201);
    put_slot(&s, "started", &w.schedule, now - SignedDuration::from_mins(30), 60).await.expect_status(201);
    put_slot(&s, "other-schedule", "sch-other", "2030-01-07T00:30:00Z".parse().unwrap(), 30).await.expect_status(201);
    put_slot(&s, "week-later", &w.schedule, "2030-01-14T00:30:00Z".parse().unwrap(), 30).await.expect_status(201);
    let before = all_of_type(&s, "Slot").await;
    let first = w.slots[0].as_str();
    for (slots, position) in [
        (vec!["past"], 0),
        (vec!["started"], 0),
        (vec![first, "other-schedule"], 1),
        (vec![first, "week-later"], 1),
        (vec![first, first], 1),
        (vec![w.slots[2].as_str(), first], 0),
    ] {
        assert_slot_refused(&book(&s, &appointment(&w.anna, &slots), &[]).await, position);
    }
    assert_eq!(all_of_type(&s, "Slot").await, before, "a refused booking changed a slot");
    assert!(all_of_type(&s, "Appointment").await.is_empty());
    // Contiguous slots of one schedule, in any order, still book together.
    let booked = book_ok(&s, &appointment(&w.anna, &[&w.slots[1], first]), &[]).await;
    assert_eq!(booked["start"], slot_times(0).0.as_str());
    assert_eq!(booked["end"], slot_times(1).1.as_str());

    // Postponing by PUT or PATCH keeps to the same rules.
    let id = id_of(&booked);
    let mut to_past = booked.clone();
    to_past["slot"] = json!([{"reference": "Slot/past"}]);
    assert_slot_refused(&s.put(&format!("Appointment/{id}"), &to_past).await, 0);
    let spread = json!([{"op": "replace", "path": "/slot", "value": [{"reference": "Slot/week-later"}, {"reference": format!("Slot/{first}")}]}]);
    assert_slot_refused(&patch(&s, &format!("Appointment/{id}"), &spread).await, 0);
    assert_eq!(s.read("Appointment", &id).await, booked);
}

#[tokio::test]
async fn overlapping_bookable_slots_of_one_schedule_are_refused() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let (start, _) = slot_times(0);
    let start: Timestamp = start.parse().unwrap();
    // The same time again, and periods reaching into it, on the same schedule.
    for (id, from, minutes) in [("dup", start, 30), ("early", start - SignedDuration::from_mins(15), 30), ("long", start - SignedDuration::from_mins(60), 300)] {
        let outcome = put_slot(&s, id, &w.schedule, from, minutes).await.outcome(409);
        assert!(diagnostics(&outcome).contains(&w.slots[0]) || diagnostics(&outcome).contains(&w.slots[1]), "{outcome}");
    }
    let mut posted = slot_resource("ignored", &w.schedule, 0, "free");
    posted.as_object_mut().unwrap().remove("id");
    s.post("Slot", &posted).await.outcome(409);
    // Moving a slot onto another by PATCH.
    let onto = json!([{"op": "replace", "path": "/start", "value": slot_times(0).0}, {"op": "replace", "path": "/end", "value": slot_times(0).1}]);
    patch(&s, &format!("Slot/{}", w.slots[1]), &onto).await.outcome(409);
    // Another schedule, the next half hour, and a staff block may share the time.
    put_resource(&s, &schedule_resource("sch-other", true, false)).await;
    put_slot(&s, "elsewhere", "sch-other", start, 30).await.expect_status(201);
    put_slot(&s, "next", &w.schedule, start + SignedDuration::from_mins(60), 30).await.expect_status(201);
    let mut block = slot_resource("block", &w.schedule, 0, "busy-unavailable");
    block["end"] = json!(slot_times(1).1);
    put_resource(&s, &block).await;
    // ... but it cannot then become bookable.
    block["status"] = json!("free");
    s.put("Slot/block", &block).await.outcome(409);
    let slots = all_of_type(&s, "Slot").await;
    assert_eq!(slots.len(), 5, "{:?}", slots.keys());
}

#[tokio::test]
async fn concurrent_creates_of_one_time_store_one_slot() {
    let s = TestServer::start().await;
    let w = setup(&s, 0).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = s.client().clone();
        let url = s.url(&format!("Slot/race-{i}"));
        let body = slot_resource(&format!("race-{i}"), &w.schedule, 5, "free");
        tasks.push(tokio::spawn(async move {
            client.put(url).header("Content-Type", "application/fhir+json").json(&body).send().await.unwrap().status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, [201, 409, 409, 409, 409, 409, 409, 409], "exactly one of the racing slots is stored");
    assert_eq!(all_of_type(&s, "Slot").await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Item 5: no way around the cancellation policy for a patient's client
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancellation_policy_binds_entered_in_error_delete_move_and_a_removed_policy() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    // A slot starting within the hour under a one-day policy: too late from the start.
    let start = Timestamp::now() + SignedDuration::from_mins(60);
    put_slot(&s, "soon", &w.schedule, start, 30).await.expect_status(201);
    let mut slot = s.read("Slot", "soon").await;
    slot["extension"] = cancellation_policy(json!(1), "d");
    s.put("Slot/soon", &slot).await.expect_status(200);
    let booked = book_ok(&s, &appointment(&w.anna, &["soon"]), &[]).await;
    let id = id_of(&booked);
    let path = format!("Appointment/{id}");

    // The policy is removed from the booked slot (and the service has none): still bound.
    let mut slot = s.read("Slot", "soon").await;
    slot.as_object_mut().unwrap().remove("extension");
    s.put("Slot/soon", &slot).await.expect_status(200);

    for status in ["cancelled", "entered-in-error"] {
        let mut body = booked.clone();
        body["status"] = json!(status);
        let outcome = s.put(&path, &body).await.outcome(422);
        assert!(diagnostics(&outcome).contains("was booked"), "{status}: {outcome}");
    }
    let mut moved = booked.clone();
    moved["slot"] = json!([{"reference": format!("Slot/{}", w.slots[0])}]);
    s.put(&path, &moved).await.outcome(422);
    let to_other = json!([{"op": "replace", "path": "/slot/0/reference", "value": format!("Slot/{}", w.slots[1])}]);
    patch(&s, &path, &to_other).await.outcome(422);
    s.delete(&path).await.outcome(422);

    assert_eq!(s.read("Appointment", &id).await, booked, "nothing changed");
    assert_eq!(slot_status(&s, "soon").await, "busy");
    assert_eq!(slot_status(&s, &w.slots[0]).await, "free");
}

// ---------------------------------------------------------------------------------------------
// Item 6 (part): held and booked slots cannot be deleted by clients
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn held_or_booked_slots_cannot_be_deleted() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let token = hold_ok(&s, &w.slots[0]).await;
    book_ok(&s, &appointment(&w.anna, &[&w.slots[1]]), &[]).await;
    for slot in &w.slots {
        s.delete(&format!("Slot/{slot}")).await.outcome(409);
    }
    assert_eq!(slot_status(&s, &w.slots[0]).await, "busy-tentative");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "busy");
    // Released, the slot can go.
    release(&s, &w.slots[0], Some(&token)).await.expect_status(200);
    s.delete(&format!("Slot/{}", w.slots[0])).await.expect_status(204);
}

// ---------------------------------------------------------------------------------------------
// Item 6: a client holds few slots, and no hold is renewed forever
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn one_client_holds_at_most_three_slots_by_default() {
    let s = TestServer::start_with(ServerOptions::new().hold_limit(None)).await;
    let w = setup(&s, 4).await;
    // A new token with every hold does not make the client another holder.
    let tokens = [hold_ok(&s, &w.slots[0]).await, hold_ok(&s, &w.slots[1]).await, hold_ok(&s, &w.slots[2]).await];
    let outcome = hold(&s, &w.slots[3]).await.outcome(409);
    assert!(diagnostics(&outcome).contains("holds 3 slots already"), "{outcome}");
    assert_eq!(slot_status(&s, &w.slots[3]).await, "free");
    // Releasing one makes room; booking a held slot ends its hold too.
    release(&s, &w.slots[0], Some(&tokens[0])).await.expect_status(200);
    let fourth = hold_ok(&s, &w.slots[3]).await;
    book_ok(&s, &appointment(&w.anna, &[&w.slots[3]]), &[&fourth]).await;
    hold_ok(&s, &w.slots[0]).await;
}

#[tokio::test]
async fn renewing_a_hold_never_extends_it_past_the_maximum_hold_time() {
    let options = ServerOptions::new().flag("--hold-duration", "20m").flag("--max-hold-time", "20m");
    let s = TestServer::start_with(options).await;
    let w = setup(&s, 1).await;
    let first = hold(&s, &w.slots[0]).await.expect_status(200).json();
    let token = token_of(&first);
    let renewed = s.post("Slot/$hold", &with_token(hold_request(&w.slots[0], "busy-tentative"), &token)).await;
    let renewed = renewed.expect_status(200).json();
    assert_eq!(token_of(&renewed), token);
    assert_eq!(held_until_of(&renewed), held_until_of(&first), "the renewal ends when the first hold did");
}
