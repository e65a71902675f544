//! `Slot/$hold` over HTTP (issue 4): placing, renewing and releasing holds, who may release,
//! how the slot is named (reference, instance URL, identifiers), input errors, conflicts, and
//! hold expiry (with `--hold-duration 0s`, so no test sleeps).

mod scheduling_support;
mod support;

use jiff::{SignedDuration, Timestamp};
use scheduling_support::*;
use serde_json::{Value, json};
use support::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s:?} is not an instant: {e}"))
}

/// Reads the slot and returns (status, versionId).
async fn slot_state(s: &TestServer, id: &str) -> (String, String) {
    let slot = s.read("Slot", id).await;
    (slot["status"].as_str().unwrap_or_default().to_string(), version_id(&slot))
}

/// A 409 `$hold` answer: Parameters{slot shown busy-unavailable, outcome coded conflict}.
#[track_caller]
fn assert_hold_rejected(r: &Resp, slot_id: &str) {
    assert_eq!(r.code(), 409, "{}: expected 409; body: {}", r.what(), r.text());
    r.assert_fhir_json();
    let body = r.json();
    assert_eq!(body["resourceType"], "Parameters", "409 body is not Parameters: {body}");
    let slot = param_resource(&body, "slot");
    assert_eq!(slot["id"], slot_id, "{body}");
    assert_eq!(slot["status"], "busy-unavailable", "the rejected caller must see busy-unavailable: {body}");
    let outcome = param_resource(&body, "outcome");
    assert_outcome(&outcome, &r.what());
    assert_issue_code(&outcome, "conflict");
    assert!(param(&body, "hold-token").is_none(), "a rejection must not hand out a token: {body}");
}

#[tokio::test]
async fn hold_answers_slot_outcome_held_until_and_token() {
    let s = TestServer::start_with(ServerOptions::new().flag("--hold-duration", "15m")).await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    let (_, v_before) = slot_state(&s, slot).await;
    let before = Timestamp::now();
    let r = hold(&s, slot).await.expect_status(200);
    let after = Timestamp::now();
    r.assert_fhir_json();
    let body = r.json();
    assert_eq!(body["resourceType"], "Parameters");
    let shown = param_resource(&body, "slot");
    assert_eq!(shown["resourceType"], "Slot");
    assert_eq!(shown["id"], slot.as_str());
    assert_eq!(shown["status"], "busy-tentative");
    let outcome = param_resource(&body, "outcome");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(
        outcome["issue"].as_array().unwrap().iter().all(|i| i["severity"] == "information"),
        "a successful hold's outcome carries no errors: {outcome}"
    );
    // The server chooses the duration (here configured as 15 minutes).
    let held_until = ts(&held_until_of(&body));
    assert!(
        held_until >= before + SignedDuration::from_mins(15) - SignedDuration::from_secs(1)
            && held_until <= after + SignedDuration::from_mins(15) + SignedDuration::from_secs(1),
        "held-until {held_until} is not 15 minutes after the request ({before} .. {after})"
    );
    let token = token_of(&body);
    assert!(!token.trim().is_empty());

    // The stored slot is busy-tentative (a new version); the other slot is untouched.
    let (status, v_after) = slot_state(&s, slot).await;
    assert_eq!(status, "busy-tentative");
    assert_ne!(v_after, v_before, "placing a hold stores a new Slot version");
    assert_eq!(slot_status(&s, &w.slots[1]).await, "free");
    // Search shows the same.
    let all = all_of_type(&s, "Slot").await;
    assert_eq!(all[slot]["status"], "busy-tentative");
    assert_eq!(all[&w.slots[1]]["status"], "free");

    // Every hold gets its own token.
    let other = hold_ok(&s, &w.slots[1]).await;
    assert_ne!(other, token);
}

#[tokio::test]
async fn instance_level_hold_and_release() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    let only_status = |status: &str| json!({"resourceType": "Parameters", "parameter": [{"name": "slot-status", "valueCode": status}]});
    let before = Timestamp::now();
    let r = s.post(&format!("Slot/{slot}/$hold"), &only_status("busy-tentative")).await.expect_status(200);
    let after = Timestamp::now();
    let body = r.json();
    // The default hold duration is 10 minutes.
    let held_until = ts(&held_until_of(&body));
    assert!(
        held_until >= before + SignedDuration::from_mins(10) - SignedDuration::from_secs(1)
            && held_until <= after + SignedDuration::from_mins(10) + SignedDuration::from_secs(1),
        "default held-until {held_until} is not 10 minutes after the request ({before} .. {after})"
    );
    assert_eq!(param_resource(&body, "slot")["id"], slot.as_str());
    let token = token_of(&body);
    assert_eq!(slot_status(&s, slot).await, "busy-tentative");

    // A slot-reference that names another slot than the URL: 400, nothing changes.
    let (_, v) = slot_state(&s, &w.slots[1]).await;
    let mismatch = hold_request(&w.slots[1], "busy-tentative");
    s.post(&format!("Slot/{slot}/$hold"), &mismatch).await.outcome(400);
    assert_eq!(slot_state(&s, &w.slots[1]).await, ("free".to_string(), v));

    // Release on the instance URL with the token.
    let r = s
        .post(&format!("Slot/{slot}/$hold"), &with_token(only_status("free"), &token))
        .await
        .expect_status(200);
    assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
    assert_eq!(slot_status(&s, slot).await, "free");

    // Unknown slot: 404.
    s.post("Slot/no-such-slot/$hold", &only_status("busy-tentative")).await.outcome(404);
    s.post("Slot/$hold", &hold_request("no-such-slot", "busy-tentative")).await.outcome(404);
}

#[tokio::test]
async fn ig_example_hold_and_release_requests_work() {
    // The IG's example requests (examples/Slot-operationHold-request.md and
    // Slot-operationHoldRelease-request.md) as JSON. The release example writes `code` instead
    // of `valueCode` and `Slt/` instead of `Slot/`; the README says Termin reads both leniently.
    let s = TestServer::start().await;
    for (_, r) in package_resources() {
        if r["id"] == "HL7ATSchedulingScheduleExample01" || r["id"] == "HL7ATSchedulingSlotExample01-free" {
            put_resource(&s, &r).await;
        }
    }
    let slot = "HL7ATSchedulingSlotExample01-free";
    let hold_req = json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": "Slot/HL7ATSchedulingSlotExample01-free"}},
        {"name": "slot-status", "valueCode": "busy-tentative"}
    ]});
    let r = s.post("Slot/$hold", &hold_req).await.expect_status(200);
    let body = r.json();
    let shown = param_resource(&body, "slot");
    assert_eq!(shown["status"], "busy-tentative");
    assert_eq!(shown["start"], "2025-09-15T08:00:00Z");
    assert_eq!(shown["schedule"]["reference"], "Schedule/HL7ATSchedulingScheduleExample01");
    held_until_of(&body);
    let token = token_of(&body);

    let release_req = json!({"resourceType": "Parameters", "parameter": [
        {"name": "slot-reference", "valueReference": {"reference": "Slt/HL7ATSchedulingSlotExample01-free"}},
        {"name": "slot-status", "code": "free"},
        {"name": "hold-token", "valueString": token}
    ]});
    let r = s.post("Slot/$hold", &release_req).await.expect_status(200);
    let body = r.json();
    assert_eq!(param_resource(&body, "slot")["status"], "free");
    param_resource(&body, "outcome");
    assert!(param(&body, "held-until").is_none(), "a release has no held-until: {body}");
    assert_eq!(slot_status(&s, slot).await, "free");
}

#[tokio::test]
async fn hold_by_identifier_must_name_exactly_one_slot() {
    let s = TestServer::start().await;
    let w = setup(&s, 3).await;
    // slot-0 and slot-1 share a second identifier; each has its own one as well.
    for i in 0..2 {
        let mut slot = slot_resource(&w.slots[i], &w.schedule, i, "free");
        slot["identifier"]
            .as_array_mut()
            .unwrap()
            .push(json!({"system": "urn:termin:test:block", "value": "morning"}));
        put_resource(&s, &slot).await;
    }
    let by_ids = |ids: &[(&str, &str)], status: &str| {
        let mut parameter: Vec<Value> = ids
            .iter()
            .map(|(sys, val)| json!({"name": "slot-identifier", "valueIdentifier": {"system": sys, "value": val}}))
            .collect();
        parameter.push(json!({"name": "slot-status", "valueCode": status}));
        json!({"resourceType": "Parameters", "parameter": parameter})
    };
    let versions = |all: &std::collections::BTreeMap<String, Value>| {
        all.values().map(|s| (id_of(s), version_id(s), s["status"].clone())).collect::<Vec<_>>()
    };
    let before = versions(&all_of_type(&s, "Slot").await);

    // No match: 404.
    let o = s.post("Slot/$hold", &by_ids(&[("urn:termin:test:slot", "nope")], "busy-tentative")).await.outcome(404);
    assert!(!diagnostics(&o).is_empty());
    // Several matches: 422 naming the parameter.
    let o = s.post("Slot/$hold", &by_ids(&[("urn:termin:test:block", "morning")], "busy-tentative")).await.outcome(422);
    assert_issue_code(&o, "multiple-matches");
    assert!(
        expressions(&o).iter().any(|e| e.contains("slot-identifier")),
        "expression should name slot-identifier: {o}"
    );
    assert_eq!(versions(&all_of_type(&s, "Slot").await), before, "a failed $hold changed a slot");

    // Exactly one: by its own identifier, and by two identifiers that together pick slot-1.
    let r = s.post("Slot/$hold", &by_ids(&[("urn:termin:test:slot", "slot-2")], "busy-tentative")).await.expect_status(200);
    assert_eq!(param_resource(&r.json(), "slot")["id"], "slot-2");
    let r = s
        .post(
            "Slot/$hold",
            &by_ids(&[("urn:termin:test:block", "morning"), ("urn:termin:test:slot", "slot-1")], "busy-tentative"),
        )
        .await
        .expect_status(200);
    let body = r.json();
    assert_eq!(param_resource(&body, "slot")["id"], "slot-1");
    assert_eq!(slot_status(&s, "slot-1").await, "busy-tentative");
    assert_eq!(slot_status(&s, "slot-0").await, "free");
    // Release by identifier too.
    let token = token_of(&body);
    let r = s
        .post("Slot/$hold", &with_token(by_ids(&[("urn:termin:test:slot", "slot-1")], "free"), &token))
        .await
        .expect_status(200);
    assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
}

#[tokio::test]
async fn malformed_hold_requests_are_400_and_change_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    let before = slot_state(&s, slot).await;
    let reference = json!({"name": "slot-reference", "valueReference": {"reference": format!("Slot/{slot}")}});
    let cases: Vec<(&str, Value)> = vec![
        ("slot-status busy", hold_request(slot, "busy")),
        ("slot-status busy-unavailable", hold_request(slot, "busy-unavailable")),
        ("slot-status booked", hold_request(slot, "booked")),
        ("slot-status empty", hold_request(slot, "")),
        ("slot-status missing", json!({"resourceType": "Parameters", "parameter": [reference.clone()]})),
        (
            "slot not named",
            json!({"resourceType": "Parameters", "parameter": [{"name": "slot-status", "valueCode": "busy-tentative"}]}),
        ),
        (
            "slot-reference to another type",
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "slot-reference", "valueReference": {"reference": "Patient/pat-anna"}},
                {"name": "slot-status", "valueCode": "busy-tentative"}]}),
        ),
        ("not Parameters", json!({"resourceType": "Patient", "name": [{"family": "X"}]})),
    ];
    for (what, body) in cases {
        let r = s.post("Slot/$hold", &body).await;
        assert_eq!(r.code(), 400, "{what}: {}: {}", r.what(), r.text());
        let o = r.outcome(400);
        if what.starts_with("slot-status") {
            assert!(
                expressions(&o).iter().any(|e| e.contains("slot-status")),
                "{what}: expression should name slot-status: {o}"
            );
        }
        assert_eq!(slot_state(&s, slot).await, before, "{what}: the slot changed");
    }
    // A release with an unknown code is rejected the same way.
    let token = hold_ok(&s, slot).await;
    let held = slot_state(&s, slot).await;
    s.post("Slot/$hold", &with_token(hold_request(slot, "released"), &token)).await.outcome(400);
    assert_eq!(slot_state(&s, slot).await, held);
}

#[tokio::test]
async fn hold_of_a_slot_held_by_another_client_is_409_and_changes_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    let token = hold_ok(&s, slot).await;
    let held = slot_state(&s, slot).await;
    // Another client: another token (header, parameter, several in the header).
    assert_hold_rejected(&hold_as_other(&s, slot).await, slot);
    assert_hold_rejected(
        &s.post("Slot/$hold", &with_token(hold_request(slot, "busy-tentative"), "not-a-token")).await,
        slot,
    );
    assert_hold_rejected(
        &post_with_tokens(&s, "Slot/$hold", &hold_request(slot, "busy-tentative"), &["wrong", "also-wrong"]).await,
        slot,
    );
    assert_eq!(slot_state(&s, slot).await, held, "a rejected hold changed the stored slot");
    // The holder's hold still works: it can book through it.
    let appt = book_ok(&s, &appointment(&w.anna, &[slot]), &[&token]).await;
    assert_eq!(slot_ids(&appt), vec![slot.clone()]);
}

#[tokio::test]
async fn release_by_a_non_holder_is_409_and_changes_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    let token = hold_ok(&s, slot).await;
    let held = slot_state(&s, slot).await;
    assert_hold_rejected(&release(&s, slot, Some(OTHER_CLIENT)).await, slot);
    assert_hold_rejected(
        &post_with_tokens(&s, "Slot/$hold", &hold_request(slot, "free"), &["forged"]).await,
        slot,
    );
    assert_eq!(slot_state(&s, slot).await, held, "a rejected release changed the stored slot");
    // Still held: a third client cannot take it either.
    assert_hold_rejected(&hold_as_other(&s, slot).await, slot);
    // The holder releases it.
    let r = release(&s, slot, Some(&token)).await.expect_status(200);
    assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
}

#[tokio::test]
async fn release_by_the_holder_frees_the_slot() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    // Token as a parameter.
    let slot = &w.slots[0];
    let token = hold_ok(&s, slot).await;
    let r = release(&s, slot, Some(&token)).await.expect_status(200);
    let body = r.json();
    assert_eq!(param_resource(&body, "slot")["status"], "free");
    let outcome = param_resource(&body, "outcome");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(param(&body, "hold-token").is_none(), "{body}");
    assert_eq!(slot_status(&s, slot).await, "free");
    // Now anybody may hold it again, with a new token; the old token does not carry over.
    let second = hold_ok(&s, slot).await;
    assert_ne!(second, token);
    assert_hold_rejected(&release(&s, slot, Some(&token)).await, slot);
    assert_eq!(slot_status(&s, slot).await, "busy-tentative");

    // Token in the X-Hold-Token header (among others).
    let other = &w.slots[1];
    let token = hold_ok(&s, other).await;
    let r = post_with_tokens(&s, "Slot/$hold", &hold_request(other, "free"), &["unrelated", &token])
        .await
        .expect_status(200);
    assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
    assert_eq!(slot_status(&s, other).await, "free");
}

#[tokio::test]
async fn releasing_a_free_slot_changes_nothing() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    let before = slot_state(&s, slot).await;
    let r = release(&s, slot, None).await.expect_status(200);
    assert_eq!(param_resource(&r.json(), "slot")["status"], "free");
    assert_eq!(slot_state(&s, slot).await, before, "releasing a free slot stored a new version");
}

#[tokio::test]
async fn renewal_by_the_holder_keeps_the_token() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    let r = hold(&s, slot).await.expect_status(200);
    let first = r.json();
    let token = token_of(&first);
    let until1 = ts(&held_until_of(&first));
    let held = slot_state(&s, slot).await;

    // Renew with the token as a parameter, then as a header.
    let r = s
        .post("Slot/$hold", &with_token(hold_request(slot, "busy-tentative"), &token))
        .await
        .expect_status(200);
    let second = r.json();
    assert_eq!(token_of(&second), token, "renewal must keep the token");
    assert_eq!(param_resource(&second, "slot")["status"], "busy-tentative");
    let until2 = ts(&held_until_of(&second));
    assert!(until2 >= until1, "renewal moved held-until backwards: {until1} -> {until2}");
    let r = post_with_tokens(&s, "Slot/$hold", &hold_request(slot, "busy-tentative"), &[&token])
        .await
        .expect_status(200);
    assert_eq!(token_of(&r.json()), token);
    // Still the holder's: others are rejected, the stored status never left busy-tentative.
    assert_eq!(slot_state(&s, slot).await.0, "busy-tentative");
    assert_eq!(slot_state(&s, slot).await, held, "renewing stored a new Slot version");
    assert_hold_rejected(&hold_as_other(&s, slot).await, slot);
    book_ok(&s, &appointment(&w.anna, &[slot]), &[&token]).await;
}

#[tokio::test]
async fn a_booked_slot_cannot_be_held_or_released() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    let slot = &w.slots[0];
    book_ok(&s, &appointment(&w.anna, &[slot]), &[]).await;
    let booked = slot_state(&s, slot).await;
    assert_eq!(booked.0, "busy");
    assert_hold_rejected(&hold(&s, slot).await, slot);
    assert_hold_rejected(&release(&s, slot, None).await, slot);
    assert_eq!(slot_state(&s, slot).await, booked);

    // Booking through one's own hold consumes it: the token no longer releases anything.
    let other = &w.slots[1];
    let token = hold_ok(&s, other).await;
    book_ok(&s, &appointment(&w.bert, &[other]), &[&token]).await;
    assert_hold_rejected(&release(&s, other, Some(&token)).await, other);
    assert_hold_rejected(
        &s.post("Slot/$hold", &with_token(hold_request(other, "busy-tentative"), &token)).await,
        other,
    );
    assert_eq!(slot_status(&s, other).await, "busy");
}

#[tokio::test]
async fn staff_blocked_and_inactive_schedule_slots_cannot_be_held() {
    let s = TestServer::start().await;
    let w = setup(&s, 2).await;
    // busy-unavailable, set by staff.
    let blocked = &w.slots[0];
    put_resource(&s, &slot_resource(blocked, &w.schedule, 0, "busy-unavailable")).await;
    let before = slot_state(&s, blocked).await;
    assert_hold_rejected(&hold(&s, blocked).await, blocked);
    // Releasing it is a conflict too: there is no hold to release.
    let o = release(&s, blocked, None).await.outcome(409);
    assert_issue_code(&o, "conflict");
    assert_eq!(slot_state(&s, blocked).await, before);

    // A slot of an inactive schedule.
    put_resource(&s, &schedule_resource("sch-closed", false, false)).await;
    let closed = "slot-closed";
    put_resource(&s, &slot_resource(closed, "sch-closed", 5, "free")).await;
    let before = slot_state(&s, closed).await;
    assert_hold_rejected(&hold(&s, closed).await, closed);
    assert_eq!(slot_state(&s, closed).await, before);
}

#[tokio::test]
async fn expired_holds_read_search_hold_and_book_as_free() {
    // Every hold expires at once; the sweeper runs only hourly, so what the test sees is the
    // expiry enforced on access, not the sweeper's stored release.
    let s = TestServer::start_with(
        ServerOptions::new()
            .flag("--hold-duration", "0s")
            .flag("--hold-sweep-interval", "1h"),
    )
    .await;
    let w = setup(&s, 3).await;
    let slot = &w.slots[0];
    let r = hold(&s, slot).await.expect_status(200);
    let body = r.json();
    let first = token_of(&body);
    let until = ts(&held_until_of(&body));
    assert!(until <= Timestamp::now(), "with --hold-duration 0s held-until {until} is in the future");

    // Read and search show the slot free.
    assert_eq!(slot_status(&s, slot).await, "free");
    assert_eq!(all_of_type(&s, "Slot").await[slot]["status"], "free");

    // Another client can hold it (new token), and a third can book it without any token.
    let second = hold_ok(&s, slot).await;
    assert_ne!(second, first);
    assert_eq!(slot_status(&s, slot).await, "free");
    let appt = book_ok(&s, &appointment(&w.bert, &[slot]), &[]).await;
    assert_eq!(slot_status(&s, slot).await, "busy");
    // The former holders own nothing any more.
    assert_hold_rejected(&release(&s, slot, Some(&first)).await, slot);
    assert_hold_rejected(&release(&s, slot, Some(&second)).await, slot);
    assert_eq!(s.read("Appointment", &id_of(&appt)).await["status"], "booked");

    // An expired hold does not protect the slot against staff writes either.
    let other = &w.slots[1];
    hold_ok(&s, other).await;
    put_resource(&s, &slot_resource(other, &w.schedule, 1, "busy-unavailable")).await;
    assert_eq!(slot_status(&s, other).await, "busy-unavailable");

    // The expired holder's token can still be used to book a free slot (it is just not needed).
    let third = &w.slots[2];
    let token = hold_ok(&s, third).await;
    book_ok(&s, &appointment(&w.anna, &[third]), &[&token]).await;
}

#[tokio::test]
async fn a_live_hold_protects_against_direct_slot_writes() {
    let s = TestServer::start().await;
    let w = setup(&s, 1).await;
    let slot = &w.slots[0];
    let token = hold_ok(&s, slot).await;
    let held = slot_state(&s, slot).await;
    for status in ["free", "busy-unavailable", "busy"] {
        let o = s.put(&format!("Slot/{slot}"), &slot_resource(slot, &w.schedule, 0, status)).await.outcome(409);
        assert!(expressions(&o).iter().any(|e| e == "Slot.status"), "{o}");
        assert_eq!(slot_state(&s, slot).await, held, "PUT status {status} changed a held slot");
    }
    // Writing other elements while keeping busy-tentative is allowed and keeps the hold.
    let mut same = slot_resource(slot, &w.schedule, 0, "busy-tentative");
    same["comment"] = json!("Raum 2");
    s.put(&format!("Slot/{slot}"), &same).await.expect_status(200);
    assert_hold_rejected(&hold_as_other(&s, slot).await, slot);
    release(&s, slot, Some(&token)).await.expect_status(200);
    let after = s.read("Slot", slot).await;
    assert_eq!(after["status"], "free");
    assert_eq!(after["comment"], "Raum 2");
}

/// Searches see a hold's expiry at once: the held slot is found by `status=busy-tentative`
/// while the hold lasts and by `status=free` once it has expired, before any sweeper run.
#[tokio::test]
async fn status_searches_follow_hold_expiry() {
    let ids = |bundle: Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["search"]["mode"] == "match")
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (duration, held_status, other_status) in [("30m", "busy-tentative", "free"), ("0s", "free", "busy-tentative")] {
        let s = TestServer::start_with(ServerOptions::new().flag("--hold-duration", duration).flag("--hold-sweep-interval", "1h")).await;
        let w = setup(&s, 2).await;
        hold(&s, &w.slots[0]).await.expect_status(200);
        let found = ids(s.get(&format!("Slot?status={held_status}&_id={}", w.slots[0])).await.expect_status(200).json());
        assert_eq!(found, [w.slots[0].clone()], "hold {duration}: status={held_status}");
        let found = ids(s.get(&format!("Slot?status={other_status}&_id={}", w.slots[0])).await.expect_status(200).json());
        assert!(found.is_empty(), "hold {duration}: status={other_status} found {found:?}");
    }
}
