//! Regression tests for the scheduling defects of issue 12 (hardening): cancellation policy
//! values, policy bypasses, hold limits, `$book` idempotency and the slot rules of `$book`,
//! postponement and Slot writes. Everything talks HTTP to the real binary.

mod scheduling_support;
mod support;

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
