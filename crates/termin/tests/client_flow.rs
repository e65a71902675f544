//! The Scheduling Client flow through `termin-client` against the real server: create the
//! patient (idempotent by SVNR), find slots, hold, book, postpone, cancel; typed searches,
//! finding appointments by SVNR, updates and `$findHSP`.

mod support;

use serde_json::{Value, json};
use support::TestServer;
use termin_client::{Client, ClientError, Hold, ProviderSearch, SVNR_SYSTEM, SlotQuery, austrian_patient};

async fn seed(s: &TestServer) {
    for resource in [
        json!({"resourceType": "Schedule", "id": "sched", "active": true, "actor": [{"reference": "Practitioner/p"}]}),
        json!({"resourceType": "Slot", "id": "a", "schedule": {"reference": "Schedule/sched"}, "status": "free",
               "start": "2030-04-09T08:00:00+02:00", "end": "2030-04-09T08:30:00+02:00"}),
        json!({"resourceType": "Slot", "id": "b", "schedule": {"reference": "Schedule/sched"}, "status": "free",
               "start": "2030-04-09T09:00:00+02:00", "end": "2030-04-09T09:30:00+02:00"}),
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
    // Another client (presenting a token of its own) cannot take the held slot.
    assert!(matches!(client.hold("a", true, Some("someone-else")).await.unwrap(), Hold::Rejected { .. }));
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
    assert_eq!(moved["start"], "2030-04-09T09:00:00+02:00");
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

/// The typed side of the client: slot and appointment queries, booking a slot as it is
/// offered, updating an appointment's information, collecting pages, and `$findHSP`.
#[tokio::test]
async fn typed_searches_booking_by_slot_and_updates() {
    let s = TestServer::start().await;
    seed(&s).await;
    // $findHSP answers services together with a provider (here the service's Organization)
    // that serves at the wanted time (here every Monday).
    s.put("Organization/practice", &json!({"resourceType": "Organization", "id": "practice", "name": "Praxis"})).await.expect_status(201);
    s.put("HealthcareService/physio", &json!({"resourceType": "HealthcareService", "id": "physio", "active": true,
        "providedBy": {"reference": "Organization/practice"},
        "availability": [{"availableTime": [{"daysOfWeek": ["mon"], "allDay": true}]}],
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "65"}]}]}))
        .await
        .expect_status(201);
    let client = Client::new(s.base());
    let patient = austrian_patient("1234010180", "Huber", &["Anna"], "1980-01-01", "female");
    let patient_ref = format!("Patient/{}", client.ensure_patient(&patient, "1234010180").await.unwrap()["id"].as_str().unwrap());

    let ids = |slots: Vec<Value>| slots.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let later = SlotQuery {
        schedule: Some("Schedule/sched".into()),
        status: Some("free".into()),
        start_from: Some("2030-04-09T08:30:00+02:00".into()),
        ..SlotQuery::default()
    };
    assert_eq!(ids(client.search_all_with(&later).await.unwrap()), ["b"]);
    let earlier = SlotQuery { start_from: None, start_to: Some("2030-04-09T08:30:00+02:00".into()), ..later.clone() };
    assert_eq!(ids(client.search_all_with(&earlier).await.unwrap()), ["a"]);

    let booking = client.book_slot("Slot/b", &patient_ref, &[]).await.unwrap();
    assert!(booking.accepted(), "{:?}", booking.outcome);
    let appointment = booking.appointment;
    assert_eq!((&appointment["start"], &appointment["end"]), (&json!("2030-04-09T09:00:00+02:00"), &json!("2030-04-09T09:30:00+02:00")));
    assert_eq!(appointment["participant"][1]["actor"]["reference"], "Practitioner/p", "the schedule's actor takes part");
    let id = appointment["id"].as_str().unwrap().to_owned();
    assert_eq!(ids(client.search_all_with(&later).await.unwrap()), Vec::<String>::new(), "the booked slot is no longer free");

    let that_day = client.find_appointments("1234010180", &["ge2030-04-09", "le2030-04-09"], Some("booked")).await.unwrap();
    assert_eq!(ids(that_day), [id.as_str()]);
    assert!(client.find_appointments("1234010180", &["ge2030-04-10"], None).await.unwrap().is_empty());
    assert!(client.find_appointments("9999999999", &[], None).await.unwrap().is_empty());

    let updated = client
        .update_appointment(&id, |a| a["description"] = json!("Bitte Befunde mitbringen"))
        .await
        .unwrap();
    assert_eq!(updated["description"], "Bitte Befunde mitbringen");
    assert_eq!(updated["meta"]["versionId"], "2");

    let first = client.search_with(&SlotQuery { count: Some(1), sort: Some("start".into()), ..SlotQuery::default() }).await.unwrap();
    assert!(client.next_page(&first).await.unwrap().is_some(), "one slot per page leaves a next page");
    let whole = client.all_pages(first).await.unwrap();
    assert!(whole.get("link").is_none(), "{whole}");
    let slot_ids: Vec<&str> = whole["entry"].as_array().unwrap().iter().filter_map(|e| e["resource"]["id"].as_str()).collect();
    assert_eq!(slot_ids, ["a", "b"]);

    let physiotherapy = ProviderSearch {
        types: vec!["http://terminology.hl7.org/CodeSystem/service-type|65".into()],
        ..ProviderSearch::default()
    };
    let found = client.find_hsp(&physiotherapy).await.unwrap();
    assert_eq!(found["type"], "searchset");
    assert_eq!(found["entry"][0]["resource"]["id"], "physio");
    assert_eq!(found["entry"][1]["resource"]["id"], "practice", "the provider comes as an include");
    let wanted_days = |day: &str| json!({"availableTime": [{"daysOfWeek": [day], "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]});
    let monday = ProviderSearch { availability: vec![wanted_days("mon")], ..physiotherapy.clone() };
    assert_eq!(client.find_hsp(&monday).await.unwrap()["entry"][0]["resource"]["id"], "physio");
    let sunday = ProviderSearch { availability: vec![wanted_days("sun")], ..physiotherapy };
    let nobody = client.find_hsp(&sunday).await.unwrap();
    assert!(nobody["entry"].as_array().unwrap().iter().all(|e| e["search"]["mode"] == "outcome"), "{nobody}");
    let Err(ClientError::Status { status, outcome: Some(outcome) }) = client.find_hsp(&ProviderSearch::default()).await else {
        panic!("$findHSP without a service must be refused with an OperationOutcome")
    };
    assert_eq!((status.as_u16(), &outcome["resourceType"]), (400, &json!("OperationOutcome")));
}
