//! The Scheduling Client flow through `termin-client` against the real server: create the
//! patient (idempotent by SVNR), find slots, hold, book, postpone, cancel.

mod support;

use serde_json::{Value, json};
use support::TestServer;
use termin_client::{Client, ClientError, Hold, SVNR_SYSTEM};

async fn seed(s: &TestServer) {
    for resource in [
        json!({"resourceType": "Schedule", "id": "sched", "active": true, "actor": [{"reference": "Practitioner/p"}]}),
        json!({"resourceType": "Slot", "id": "a", "schedule": {"reference": "Schedule/sched"}, "status": "free",
               "start": "2026-04-07T08:00:00+02:00", "end": "2026-04-07T08:30:00+02:00"}),
        json!({"resourceType": "Slot", "id": "b", "schedule": {"reference": "Schedule/sched"}, "status": "free",
               "start": "2026-04-07T09:00:00+02:00", "end": "2026-04-07T09:30:00+02:00"}),
    ] {
        let path = format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
        s.put(&path, &resource).await.expect_status(201);
    }
}

fn slot_status(slots: &[Value], id: &str) -> String {
    slots.iter().find(|s| s["id"] == id).unwrap()["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn patient_flow_through_the_client() {
    let s = TestServer::start().await;
    seed(&s).await;
    let client = Client::new(s.base());
    let patient = json!({"resourceType": "Patient",
        "identifier": [{"system": SVNR_SYSTEM, "value": "1234010180"}], "name": [{"family": "Huber"}]});
    let first = client.ensure_patient(&patient, "1234010180").await.unwrap();
    let again = client.ensure_patient(&patient, "1234010180").await.unwrap();
    assert_eq!(first["id"], again["id"], "the SVNR makes patient creation idempotent");
    let patient_id = first["id"].as_str().unwrap().to_owned();

    let slots = client.search_all("Slot", &[("_count", "1")]).await.unwrap();
    assert_eq!(slots.len(), 2, "paging collects every slot");

    let Hold::Held { token: Some(token), .. } = client.hold("a", true, None).await.unwrap() else {
        panic!("hold failed")
    };
    assert!(matches!(client.hold("a", true, None).await.unwrap(), Hold::Rejected { .. }));
    let appointment = json!({"resourceType": "Appointment", "status": "proposed",
        "subject": {"reference": format!("Patient/{patient_id}")},
        "participant": [{"actor": {"reference": format!("Patient/{patient_id}")}, "status": "accepted"}],
        "slot": [{"reference": "Slot/a"}]});
    let booking = client.book(&appointment, &[&token]).await.unwrap();
    assert!(booking.accepted(), "{:?}", booking.outcome);
    assert_eq!(booking.appointment["status"], "booked");
    let id = booking.appointment["id"].as_str().unwrap().to_owned();

    let slot_b = client.read("Slot", "b").await.unwrap().body;
    let moved = client.postpone(&id, &[slot_b], &[]).await.unwrap();
    assert_eq!(moved["start"], "2026-04-07T09:00:00+02:00");
    let slots = client.search_all("Slot", &[]).await.unwrap();
    assert_eq!((slot_status(&slots, "a"), slot_status(&slots, "b")), ("free".into(), "busy".into()));

    let cancelled = client.cancel(&id).await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let slots = client.search_all("Slot", &[]).await.unwrap();
    assert_eq!(slot_status(&slots, "b"), "free");

    let Err(ClientError::Status { status, outcome: Some(outcome) }) = client.read("Appointment", "nope").await else {
        panic!("expected a 404 with an OperationOutcome")
    };
    assert_eq!(status.as_u16(), 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
}
