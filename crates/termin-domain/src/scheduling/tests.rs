use crate::{
    BookingStatus, Caller, Clock, Domain, DomainError, HoldOutcome, MANUAL_CONFIRMATION_URL, ServiceConfig,
    SlotSelector,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use termin_fhir::ResourceType;
use termin_store::ResourceStore;
use termin_store_sqlite::SqliteStore;
use termin_store_sqlite::temporary::TemporaryStore;

/// A clock the test moves by hand.
struct ManualClock(Mutex<Timestamp>);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

impl ManualClock {
    fn advance(&self, by: SignedDuration) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

struct World {
    service: Domain,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    _db: TemporaryStore,
}

fn object(value: Value) -> Map<String, Value> {
    let Value::Object(map) = value else { panic!("not an object") };
    map
}

fn client() -> Caller {
    Caller::anonymous("client")
}

fn holder(token: &str) -> Caller {
    client().with_hold_tokens([token.to_owned()])
}

const HOLD: SignedDuration = SignedDuration::from_mins(10);

async fn world() -> World {
    let db = TemporaryStore::open().await.unwrap();
    let store = db.store.clone();
    let clock = Arc::new(ManualClock(Mutex::new("2026-03-02T08:00:00Z".parse().unwrap())));
    let service = Domain::new(
        store.clone(),
        clock.clone(),
        ServiceConfig { hold_duration: HOLD, ..ServiceConfig::default() },
        termin_search::registry(),
    );
    let ctx = Caller::system("setup");
    let put = |resource: Value| {
        let id = resource["id"].as_str().unwrap().to_owned();
        let rt: ResourceType = resource["resourceType"].as_str().unwrap().parse().unwrap();
        (rt, id, object(resource))
    };
    let setup = [
        put(json!({"resourceType": "Patient", "id": "anna",
            "identifier": [{"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"}]})),
        put(json!({"resourceType": "Patient", "id": "bert"})),
        put(json!({"resourceType": "HealthcareService", "id": "physio", "active": true})),
        put(
            json!({"resourceType": "Schedule", "id": "s1", "active": true, "actor": [{"reference": "Practitioner/p"}]}),
        ),
        put(
            json!({"resourceType": "Schedule", "id": "confirm", "active": true, "actor": [{"reference": "Practitioner/p"}],
            "extension": [{"url": MANUAL_CONFIRMATION_URL, "valueBoolean": true}]}),
        ),
    ];
    for (rt, id, body) in setup {
        service.resources.update(&ctx, rt, &id, body, None).await.unwrap();
    }
    for hour in 8..12 {
        for schedule in ["s1", "confirm"] {
            let slot = json!({"resourceType": "Slot", "id": format!("{schedule}-{hour}"),
                "schedule": {"reference": format!("Schedule/{schedule}")}, "status": "free",
                "start": format!("2026-03-10T{hour:02}:00:00Z"), "end": format!("2026-03-10T{hour:02}:30:00Z")});
            service
                .resources
                .update(&ctx, ResourceType::Slot, slot["id"].as_str().unwrap(), object(slot.clone()), None)
                .await
                .unwrap();
        }
    }
    World { service, store, clock, _db: db }
}

fn appointment(slots: &[&str]) -> Map<String, Value> {
    object(json!({
        "resourceType": "Appointment",
        "status": "proposed",
        "subject": {"reference": "Patient/anna"},
        "participant": [{"actor": {"reference": "Patient/anna"}, "status": "accepted"}],
        "slot": slots.iter().map(|s| json!({"reference": format!("Slot/{s}")})).collect::<Vec<_>>(),
    }))
}

async fn slot_status(w: &World, id: &str) -> String {
    let v = w.service.resources.read(&client(), ResourceType::Slot, id).await.unwrap();
    let body: Value = serde_json::from_str(v.body.as_deref().unwrap()).unwrap();
    body["status"].as_str().unwrap().to_owned()
}

async fn hold(w: &World, ctx: &Caller, slot: &str) -> HoldOutcome {
    w.service.scheduling.hold_slot(ctx, &SlotSelector::Id(slot.into()), true).await.unwrap()
}

fn token_of(outcome: HoldOutcome) -> String {
    match outcome {
        HoldOutcome::Held { token, .. } => token,
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[tokio::test]
async fn hold_then_book_with_the_token() {
    let w = world().await;
    let token = token_of(hold(&w, &client(), "s1-8").await);
    assert_eq!(slot_status(&w, "s1-8").await, "busy-tentative");
    assert!(matches!(hold(&w, &client(), "s1-8").await, HoldOutcome::Rejected { .. }));
    let stranger = w.service.scheduling.book(&client(), appointment(&["s1-8"])).await.unwrap();
    assert_eq!(stranger.status, BookingStatus::Rejected);
    assert_eq!(stranger.appointment["status"], "cancelled");
    let booked = w.service.scheduling.book(&holder(&token), appointment(&["s1-8"])).await.unwrap();
    assert_eq!(booked.status, BookingStatus::Booked);
    assert_eq!(booked.appointment["start"], "2026-03-10T08:00:00Z");
    assert_eq!(slot_status(&w, "s1-8").await, "busy");
    let release =
        w.service.scheduling.hold_slot(&holder(&token), &SlotSelector::Id("s1-8".into()), false).await.unwrap();
    assert!(matches!(release, HoldOutcome::Rejected { .. }), "{release:?}");
}

#[tokio::test]
async fn expired_hold_reads_free_and_the_sweeper_persists_it() {
    let w = world().await;
    token_of(hold(&w, &client(), "s1-9").await);
    w.clock.advance(HOLD + SignedDuration::from_secs(1));
    assert_eq!(slot_status(&w, "s1-9").await, "free");
    let stored = w.store.read_current(client().context(), ResourceType::Slot, "s1-9").await.unwrap().unwrap();
    assert!(stored.body.unwrap().contains("busy-tentative"), "not yet swept");
    // Another client may book the slot before the sweeper ran.
    let booked = w.service.scheduling.book(&client(), appointment(&["s1-9"])).await.unwrap();
    assert_eq!(booked.status, BookingStatus::Booked);

    token_of(hold(&w, &client(), "s1-10").await);
    w.clock.advance(HOLD + SignedDuration::from_secs(1));
    assert_eq!(w.service.scheduling.release_expired_holds(100).await.unwrap(), 1);
    let stored = w.store.read_current(client().context(), ResourceType::Slot, "s1-10").await.unwrap().unwrap();
    assert!(stored.body.unwrap().contains("\"free\""));
    let events = w.store.events(0, 100).await.unwrap();
    assert!(events.iter().any(|(_, e)| e.kind == "slot-hold-expired" && e.resource_id == "s1-10"));
}

#[tokio::test]
async fn racing_bookings_of_one_slot_book_it_once() {
    let w = Arc::new(world().await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.service.scheduling.book(&client(), appointment(&["s1-11"])).await.unwrap().status
        }));
    }
    let mut booked = 0;
    for task in tasks {
        if task.await.unwrap() == BookingStatus::Booked {
            booked += 1;
        }
    }
    assert_eq!(booked, 1);
}

/// SQLite's group commit: bookings that wait for the writer together share one transaction,
/// each in a savepoint of its own. Each gets its own answer; the one that loses its slot to an
/// earlier unit of the same group is rejected without undoing the others.
#[tokio::test]
async fn bookings_waiting_together_commit_as_one_group_each_with_its_own_answer() {
    let w = Arc::new(world().await);
    let before = w.store.commit_counts();
    // A unit of work holds the writer, so that every booking below waits for it and joins
    // its group.
    let blocker = w.store.begin_write(Caller::system("test").context()).await.unwrap();
    let slots = ["s1-8", "s1-9", "s1-10", "s1-11", "s1-11"];
    let mut bookings = Vec::new();
    for slot in slots {
        let w = w.clone();
        bookings.push(tokio::spawn(async move {
            w.service.scheduling.book(&client(), appointment(&[slot])).await.unwrap().status
        }));
    }
    // A guard against a hang, not a timing assertion: every booking begins its unit of work.
    let all_waiting = async {
        while w.store.waiting_units() < slots.len() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), all_waiting)
        .await
        .expect("the bookings wait for the writer");
    blocker.commit().await.unwrap();
    let after = w.store.commit_counts();
    assert_eq!(after.groups - before.groups, 1, "one commit for the blocker and the five bookings");
    assert_eq!(after.units - before.units, 5, "the blocker and four bookings committed, the rejected one not");

    let mut answers = Vec::new();
    for booking in bookings {
        answers.push(booking.await.unwrap());
    }
    assert_eq!(answers[..3], [BookingStatus::Booked, BookingStatus::Booked, BookingStatus::Booked]);
    let mut raced = answers[3..].to_vec();
    raced.sort_by_key(|status| format!("{status:?}"));
    assert_eq!(raced, [BookingStatus::Booked, BookingStatus::Rejected], "one of the two for s1-11 wins");
    for slot in ["s1-8", "s1-9", "s1-10", "s1-11"] {
        assert_eq!(slot_status(&w, slot).await, "busy", "{slot} is booked durably");
    }
}

#[tokio::test]
async fn cancel_postpone_and_fixed_elements() {
    let w = world().await;
    let booked = w.service.scheduling.book(&client(), appointment(&["s1-8"])).await.unwrap();
    let id = booked.version.as_ref().unwrap().id.clone();
    let mut moved = booked.appointment.clone();
    moved.insert("slot".into(), json!([{"reference": "Slot/s1-9"}]));
    moved.insert("start".into(), json!("2026-03-10T09:00:00Z"));
    moved.insert("end".into(), json!("2026-03-10T09:30:00Z"));
    w.service.resources.update(&client(), ResourceType::Appointment, &id, moved.clone(), None).await.unwrap();
    assert_eq!(slot_status(&w, "s1-8").await, "free");
    assert_eq!(slot_status(&w, "s1-9").await, "busy");

    // Postponing onto a taken slot changes nothing.
    w.service.scheduling.book(&client(), appointment(&["s1-10"])).await.unwrap();
    let mut clash = moved.clone();
    clash.insert("slot".into(), json!([{"reference": "Slot/s1-10"}]));
    let err = w.service.resources.update(&client(), ResourceType::Appointment, &id, clash, None).await.unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)), "{err:?}");
    assert_eq!(slot_status(&w, "s1-9").await, "busy");

    let mut other_patient = moved.clone();
    other_patient.insert("subject".into(), json!({"reference": "Patient/bert"}));
    let err =
        w.service.resources.update(&client(), ResourceType::Appointment, &id, other_patient, None).await.unwrap_err();
    let DomainError::Unprocessable(outcome) = err else { panic!("{err:?}") };
    assert_eq!(outcome.issues[0].expression, ["Appointment.subject"]);

    let mut cancelled = moved;
    cancelled.insert("status".into(), json!("cancelled"));
    let done =
        w.service.resources.update(&client(), ResourceType::Appointment, &id, cancelled.clone(), None).await.unwrap();
    assert!(done.version.body.unwrap().contains("cancellationDate"));
    assert_eq!(slot_status(&w, "s1-9").await, "free");
    cancelled.insert("description".into(), json!("too late"));
    let err = w.service.resources.update(&client(), ResourceType::Appointment, &id, cancelled, None).await.unwrap_err();
    assert!(matches!(err, DomainError::Unprocessable(_)));
}

#[tokio::test]
async fn slot_writes_cannot_contradict_a_booking() {
    let w = world().await;
    w.service.scheduling.book(&client(), appointment(&["s1-8"])).await.unwrap();
    let current = w.service.resources.read(&client(), ResourceType::Slot, "s1-8").await.unwrap();
    let mut slot: Map<String, Value> = serde_json::from_str(current.body.as_deref().unwrap()).unwrap();
    slot.insert("status".into(), json!("free"));
    let err = w.service.resources.update(&client(), ResourceType::Slot, "s1-8", slot, None).await.unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)));
    let err = w.service.resources.delete(&client(), ResourceType::Slot, "s1-8", None).await.unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)));
    let fresh = json!({"resourceType": "Slot", "id": "s1-9", "schedule": {"reference": "Schedule/s1"},
        "status": "busy", "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T09:30:00Z"});
    let err = w.service.resources.update(&client(), ResourceType::Slot, "s1-9", object(fresh), None).await.unwrap_err();
    assert!(matches!(err, DomainError::Unprocessable(_)));
}

#[tokio::test]
async fn manual_confirmation_makes_bookings_pending_until_staff_decide() {
    let w = world().await;
    let pending = w.service.scheduling.book(&client(), appointment(&["confirm-8"])).await.unwrap();
    assert_eq!(pending.status, BookingStatus::Pending);
    assert_eq!(slot_status(&w, "confirm-8").await, "busy");
    let id = pending.version.unwrap().id;
    let mut confirmed = pending.appointment.clone();
    confirmed.insert("status".into(), json!("booked"));
    w.service.resources.update(&client(), ResourceType::Appointment, &id, confirmed, None).await.unwrap();
    let events = w.store.events(0, 100).await.unwrap();
    assert!(events.iter().any(|(_, e)| e.kind == "appointment-confirmed"));

    let declined = w.service.scheduling.book(&client(), appointment(&["confirm-9"])).await.unwrap();
    let id = declined.version.unwrap().id;
    let mut cancelled = declined.appointment;
    cancelled.insert("status".into(), json!("cancelled"));
    w.service.resources.update(&client(), ResourceType::Appointment, &id, cancelled, None).await.unwrap();
    assert_eq!(slot_status(&w, "confirm-9").await, "free");
}

#[tokio::test]
async fn a_patient_token_declines_but_does_not_confirm_its_pending_booking() {
    let w = world().await;
    let principal = termin_store::TokenPrincipal {
        subject: "anna".into(),
        client_id: None,
        patient: Some("anna".into()),
        fhir_user: None,
    };
    let anna = Caller::new(
        termin_store::RequestContext::anonymous("r")
            .with_token(principal, termin_store::Scope::parse_all("patient/Appointment.cruds")),
    );
    let pending = w.service.scheduling.book(&anna, appointment(&["confirm-8"])).await.unwrap();
    let id = pending.version.unwrap().id;
    let mut confirmed = pending.appointment.clone();
    confirmed.insert("status".into(), json!("booked"));
    let refused = w.service.resources.update(&anna, ResourceType::Appointment, &id, confirmed, None).await.unwrap_err();
    assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
    let mut declined = pending.appointment;
    declined.insert("status".into(), json!("cancelled"));
    w.service.resources.update(&anna, ResourceType::Appointment, &id, declined, None).await.unwrap();
    assert_eq!(slot_status(&w, "confirm-8").await, "free");
}

#[tokio::test]
async fn rebooking_with_the_same_identifier_returns_the_first_booking() {
    let w = world().await;
    let mut request = appointment(&["s1-8"]);
    request.insert("identifier".into(), json!([{"system": "urn:app", "value": "req-1"}]));
    let first = w.service.scheduling.book(&client(), request.clone()).await.unwrap();
    let again = w.service.scheduling.book(&client(), request.clone()).await.unwrap();
    assert_eq!(again.status, BookingStatus::AlreadyBooked);
    assert_eq!(again.version.unwrap().id, first.version.unwrap().id);

    // The same subject named by identifier is still a repeat.
    let mut by_svnr = request.clone();
    by_svnr.insert(
        "subject".into(),
        json!({"identifier": {"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"}}),
    );
    assert_eq!(w.service.scheduling.book(&client(), by_svnr).await.unwrap().status, BookingStatus::AlreadyBooked);

    // Another patient or other slots with that identifier are no repeat.
    let mut other_patient = request.clone();
    other_patient.insert("subject".into(), json!({"reference": "Patient/bert"}));
    let mut other_slots = appointment(&["s1-9"]);
    other_slots.insert("identifier".into(), request["identifier"].clone());
    for clash in [other_patient, other_slots] {
        let err = w.service.scheduling.book(&client(), clash).await.unwrap_err();
        let DomainError::Conflict(outcome) = err else { panic!("{err:?}") };
        assert_eq!(outcome.issues[0].expression, ["Appointment.identifier"]);
    }
    assert_eq!(slot_status(&w, "s1-9").await, "free");
}

#[tokio::test]
async fn subject_by_social_security_number_and_preconditions() {
    let w = world().await;
    let mut by_svnr = appointment(&["s1-8"]);
    by_svnr.insert(
        "subject".into(),
        json!({"identifier": {"system": "urn:oid:1.2.40.0.10.1.4.3.1", "value": "1234010180"}}),
    );
    let booked = w.service.scheduling.book(&client(), by_svnr).await.unwrap();
    assert_eq!(booked.appointment["subject"]["reference"], "Patient/anna");

    let mut unknown = appointment(&["s1-9"]);
    unknown.insert("subject".into(), json!({"reference": "Patient/nobody"}));
    assert!(matches!(w.service.scheduling.book(&client(), unknown).await, Err(DomainError::Unprocessable(_))));
    let mut wrong_time = appointment(&["s1-9"]);
    wrong_time.insert("start".into(), json!("2026-03-10T09:00:00+01:00"));
    assert!(matches!(w.service.scheduling.book(&client(), wrong_time).await, Err(DomainError::Unprocessable(_))));
    let mut same_instant = appointment(&["s1-9"]);
    same_instant.insert("start".into(), json!("2026-03-10T10:00:00+01:00"));
    same_instant.insert("end".into(), json!("2026-03-10T10:30:00+01:00"));
    assert_eq!(w.service.scheduling.book(&client(), same_instant).await.unwrap().status, BookingStatus::Booked);
}

#[tokio::test]
async fn late_cancellation_by_a_patient_breaks_the_policy_but_staff_may() {
    let w = world().await;
    let policy = json!([{
        "url": crate::rules::policy::CANCELLATION_POLICY_URL,
        "extension": [{"url": "cancelUntil", "valueDuration": {"value": 24, "system": "http://unitsofmeasure.org", "code": "h"}}]
    }]);
    for slot_id in ["s1-8", "s1-9"] {
        let current = w.service.resources.read(&client(), ResourceType::Slot, slot_id).await.unwrap();
        let mut slot: Map<String, Value> = serde_json::from_str(current.body.as_deref().unwrap()).unwrap();
        slot.insert("extension".into(), policy.clone());
        w.service.resources.update(&client(), ResourceType::Slot, slot_id, slot, None).await.unwrap();
    }
    let early = w.service.scheduling.book(&client(), appointment(&["s1-8"])).await.unwrap();
    let late = w.service.scheduling.book(&client(), appointment(&["s1-9"])).await.unwrap();
    let cancel = |outcome: &crate::BookingOutcome| {
        let mut body = outcome.appointment.clone();
        body.insert("status".into(), json!("cancelled"));
        (outcome.version.as_ref().unwrap().id.clone(), body)
    };
    let (id, body) = cancel(&early);
    w.service.resources.update(&client(), ResourceType::Appointment, &id, body, None).await.unwrap();

    // 2026-03-10T08:00Z is less than 24 h before the 09:00 appointment.
    w.clock.advance(SignedDuration::from_hours(8 * 24));
    let (id, body) = cancel(&late);
    let err =
        w.service.resources.update(&client(), ResourceType::Appointment, &id, body.clone(), None).await.unwrap_err();
    let DomainError::Unprocessable(outcome) = err else { panic!("{err:?}") };
    assert!(outcome.issues[0].diagnostics.contains("24 h"), "{}", outcome.issues[0].diagnostics);
    assert_eq!(slot_status(&w, "s1-9").await, "busy");
    let staff = Caller::system("staff");
    w.service.resources.update(&staff, ResourceType::Appointment, &id, body, None).await.unwrap();
    assert_eq!(slot_status(&w, "s1-9").await, "free");
}

#[tokio::test]
async fn book_takes_only_one_schedules_contiguous_slots_that_have_not_started() {
    let w = world().await;
    let ctx = Caller::system("setup");
    for (id, start, end) in [("s1-830", "08:30", "09:00"), ("s1-7", "07:00", "07:30")] {
        let slot = json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/s1"}, "status": "free",
            "start": format!("2026-03-10T{start}:00Z"), "end": format!("2026-03-10T{end}:00Z")});
        w.service.resources.update(&ctx, ResourceType::Slot, id, object(slot), None).await.unwrap();
    }
    let refused = |slots: &[&str]| {
        let request = appointment(slots);
        async { w.service.scheduling.book(&client(), request).await.unwrap_err() }
    };
    for (slots, position) in [
        (&["s1-8", "s1-8"][..], 1),
        (&["s1-8", "confirm-8"][..], 1),
        (&["s1-8", "s1-10"][..], 1),
        (&["s1-10", "s1-8"][..], 0),
    ] {
        let DomainError::Unprocessable(outcome) = refused(slots).await else { panic!("{slots:?}") };
        assert_eq!(outcome.issues[0].expression, [format!("Appointment.slot[{position}]")], "{slots:?}: {outcome:?}");
    }
    // Listed in any order, contiguous slots book together.
    let booked = w.service.scheduling.book(&client(), appointment(&["s1-830", "s1-8"])).await.unwrap();
    assert_eq!(
        (&booked.appointment["start"], &booked.appointment["end"]),
        (&json!("2026-03-10T08:00:00Z"), &json!("2026-03-10T09:00:00Z"))
    );

    w.clock.advance(SignedDuration::from_hours(8 * 24 - 1)); // 2026-03-10T07:00Z
    let DomainError::Unprocessable(outcome) = refused(&["s1-7"]).await else { panic!("a started slot was booked") };
    assert!(outcome.issues[0].diagnostics.contains("started"), "{outcome:?}");
    let staff = w.service.scheduling.book(&ctx, appointment(&["s1-7"])).await.unwrap();
    assert_eq!(staff.status, BookingStatus::Booked, "staff may book a walk-in");
}

#[tokio::test]
async fn postponing_keeps_to_the_booking_rules() {
    let w = world().await;
    let booked = w.service.scheduling.book(&client(), appointment(&["s1-10"])).await.unwrap();
    let id = booked.version.as_ref().unwrap().id.clone();
    let move_to = |slots: &[&str]| {
        let mut moved = booked.appointment.clone();
        moved.insert(
            "slot".into(),
            json!(slots.iter().map(|s| json!({"reference": format!("Slot/{s}")})).collect::<Vec<_>>()),
        );
        moved
    };
    for slots in [&["s1-8", "s1-9"][..], &["s1-8", "confirm-9"][..], &["s1-9", "s1-9"][..]] {
        let err = w
            .service
            .resources
            .update(&client(), ResourceType::Appointment, &id, move_to(slots), None)
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::Unprocessable(_)), "{slots:?}: {err:?}");
    }
    w.clock.advance(SignedDuration::from_hours(8 * 24 + 1)); // 2026-03-10T09:00Z
    let err = w
        .service
        .resources
        .update(&client(), ResourceType::Appointment, &id, move_to(&["s1-9"]), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Unprocessable(_)), "{err:?}");
    w.service.resources.update(&client(), ResourceType::Appointment, &id, move_to(&["s1-11"]), None).await.unwrap();
    assert_eq!(slot_status(&w, "s1-10").await, "free");
}

#[tokio::test]
async fn bookable_slots_of_one_schedule_do_not_overlap() {
    let w = world().await;
    let slot = |id: &str, schedule: &str, start: &str, end: &str, status: &str| {
        object(json!({"resourceType": "Slot", "id": id, "schedule": {"reference": format!("Schedule/{schedule}")},
            "status": status, "start": format!("2026-03-10T{start}:00Z"), "end": format!("2026-03-10T{end}:00Z")}))
    };
    let service = &w.service;
    let put = |body: Map<String, Value>| {
        let id = body["id"].as_str().unwrap().to_owned();
        async move { service.resources.update(&client(), ResourceType::Slot, &id, body, None).await }
    };
    for (start, end) in [("08:00", "08:30"), ("08:15", "08:45"), ("07:45", "08:15"), ("07:00", "12:00")] {
        let err = put(slot("x", "s1", start, end, "free")).await.unwrap_err();
        assert!(matches!(err, DomainError::Conflict(_)), "{start}-{end}: {err:?}");
    }
    put(slot("x", "s1", "08:30", "09:00", "free")).await.unwrap();
    put(slot("y", "s2", "08:00", "08:30", "free")).await.unwrap();
    put(slot("block", "s1", "07:00", "12:00", "busy-unavailable")).await.unwrap();
    let err = put(slot("block", "s1", "07:00", "12:00", "free")).await.unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)), "{err:?}");
    let err = put(slot("z", "s1", "13:00", "12:59", "free")).await.unwrap_err();
    assert!(matches!(err, DomainError::Unprocessable(_)), "{err:?}");
    // A deleted or moved slot frees its time.
    w.service.resources.delete(&client(), ResourceType::Slot, "x", None).await.unwrap();
    put(slot("x2", "s1", "08:30", "09:00", "free")).await.unwrap();
    // Slots that have ended are history and are not checked.
    w.clock.advance(SignedDuration::from_hours(10 * 24));
    put(slot("old", "s1", "08:00", "08:30", "free")).await.unwrap();
}

#[tokio::test]
async fn the_policy_recorded_at_booking_binds_every_way_of_freeing_the_slot() {
    let w = world().await;
    let policy = json!([{
        "url": crate::rules::policy::CANCELLATION_POLICY_URL,
        "extension": [{"url": "cancelUntil", "valueDuration": {"value": 24, "system": "http://unitsofmeasure.org", "code": "h"}}]
    }]);
    let current = w.service.resources.read(&client(), ResourceType::Slot, "s1-9").await.unwrap();
    let mut slot: Map<String, Value> = serde_json::from_str(current.body.as_deref().unwrap()).unwrap();
    slot.insert("extension".into(), policy);
    w.service.resources.update(&client(), ResourceType::Slot, "s1-9", slot.clone(), None).await.unwrap();
    let booked = w.service.scheduling.book(&client(), appointment(&["s1-9"])).await.unwrap();
    let id = booked.version.as_ref().unwrap().id.clone();
    // The policy is removed from the booked slot afterwards: the recorded deadline still holds.
    slot.shift_remove("extension");
    slot.insert("status".into(), json!("busy"));
    w.service.resources.update(&client(), ResourceType::Slot, "s1-9", slot, None).await.unwrap();
    w.clock.advance(SignedDuration::from_hours(8 * 24)); // 2026-03-10T08:00Z, an hour before
    let with_status = |status: &str| {
        let mut body = booked.appointment.clone();
        body.insert("status".into(), json!(status));
        body
    };
    let mut moved = booked.appointment.clone();
    moved.insert("slot".into(), json!([{"reference": "Slot/s1-11"}]));
    for body in [with_status("cancelled"), with_status("entered-in-error"), moved] {
        let err = w.service.resources.update(&client(), ResourceType::Appointment, &id, body, None).await.unwrap_err();
        let DomainError::Unprocessable(outcome) = err else { panic!("{err:?}") };
        assert!(outcome.issues[0].diagnostics.contains("when Slot/s1-9 was booked"), "{outcome:?}");
    }
    let err = w.service.resources.delete(&client(), ResourceType::Appointment, &id, None).await.unwrap_err();
    assert!(matches!(err, DomainError::Unprocessable(_)), "{err:?}");
    assert_eq!(slot_status(&w, "s1-9").await, "busy");
    let staff = Caller::system("staff");
    w.service.resources.delete(&staff, ResourceType::Appointment, &id, None).await.unwrap();
    assert_eq!(slot_status(&w, "s1-9").await, "free");
}

fn at_address(address: &str) -> Caller {
    client().with_client_address(address)
}

#[tokio::test]
async fn one_client_holds_at_most_its_limit_of_slots() {
    let w = world().await;
    let mallory = at_address("203.0.113.7");
    for slot in ["s1-8", "s1-9", "s1-10"] {
        token_of(hold(&w, &mallory, slot).await);
    }
    let refused = w.service.scheduling.hold_slot(&mallory, &SlotSelector::Id("s1-11".into()), true).await.unwrap_err();
    let DomainError::Conflict(outcome) = refused else { panic!("expected a conflict, got {refused:?}") };
    assert!(outcome.issues[0].diagnostics.contains("holds 3 slots already"), "{outcome:?}");
    assert_eq!(slot_status(&w, "s1-11").await, "free");
    // Another client is not affected, and an expired hold no longer counts.
    token_of(hold(&w, &at_address("198.51.100.1"), "s1-11").await);
    w.clock.advance(HOLD);
    token_of(hold(&w, &mallory, "confirm-8").await);
}

#[tokio::test]
async fn a_hold_is_renewed_only_up_to_the_maximum_hold_time() {
    let w = world().await;
    let placed = w.clock.now();
    let token = token_of(hold(&w, &client(), "s1-8").await);
    let owner = holder(&token);
    // Renewed after 25 minutes, it ends 30 minutes after it was placed, not 10 after renewal.
    w.clock.advance(SignedDuration::from_mins(9));
    token_of(hold(&w, &owner, "s1-8").await);
    w.clock.advance(SignedDuration::from_mins(9));
    token_of(hold(&w, &owner, "s1-8").await);
    w.clock.advance(SignedDuration::from_mins(7));
    match hold(&w, &owner, "s1-8").await {
        HoldOutcome::Held { held_until, .. } => assert_eq!(held_until, placed + SignedDuration::from_mins(30)),
        other => panic!("expected a hold, got {other:?}"),
    }
    w.clock.advance(SignedDuration::from_mins(5));
    // Then it has run out: the slot is free for anyone, and the old token proves nothing.
    assert_eq!(slot_status(&w, "s1-8").await, "free");
    let other = token_of(hold(&w, &client(), "s1-8").await);
    assert_ne!(other, token);
}

#[tokio::test]
async fn a_token_less_caller_owns_the_holds_of_its_address() {
    let w = world().await;
    let here = at_address("192.0.2.10");
    token_of(hold(&w, &here, "s1-8").await);
    token_of(hold(&w, &here, "s1-9").await);
    // Another address, or the same address presenting another token, does not own the hold.
    assert!(matches!(hold(&w, &at_address("192.0.2.11"), "s1-8").await, HoldOutcome::Rejected { .. }));
    let other_token = at_address("192.0.2.10").with_hold_tokens(["someone-else".to_owned()]);
    let refused = w.service.scheduling.book(&other_token, appointment(&["s1-8"])).await.unwrap();
    assert_eq!(refused.status, BookingStatus::Rejected);
    // The holder books one and releases the other without presenting any token.
    let booked = w.service.scheduling.book(&here, appointment(&["s1-8"])).await.unwrap();
    assert_eq!(booked.status, BookingStatus::Booked);
    let released = w.service.scheduling.hold_slot(&here, &SlotSelector::Id("s1-9".into()), false).await.unwrap();
    assert!(matches!(released, HoldOutcome::Released { .. }), "{released:?}");
    assert_eq!(slot_status(&w, "s1-9").await, "free");
}

#[tokio::test]
async fn a_one_slot_booking_reads_each_resource_hold_and_booking_once() {
    let w = world().await;
    let probe = Arc::new(crate::test_support::ProbeStore::new(w.store.clone()));
    let service = Domain::new(
        probe.clone(),
        w.clock.clone(),
        ServiceConfig { hold_duration: HOLD, ..ServiceConfig::default() },
        termin_search::registry(),
    );
    let token =
        token_of(service.scheduling.hold_slot(&client(), &SlotSelector::Id("s1-8".into()), true).await.unwrap());
    probe.take_reads();
    let booked = service.scheduling.book(&holder(&token), appointment(&["s1-8"])).await.unwrap();
    assert_eq!(booked.status, BookingStatus::Booked);
    let reads = probe.take_reads();
    for what in ["read Slot/s1-8", "read Schedule/s1", "read Patient/anna", "hold s1-8", "booking s1-8"] {
        assert_eq!(reads.iter().filter(|r| *r == what).count(), 1, "{what} in {reads:?}");
    }
}

/// Generating a week of a Schedule's Slots reads and writes them in bulk: a constant number
/// of store calls, none per Slot; a second generation finds them all and changes nothing.
#[tokio::test]
async fn generation_reads_and_writes_a_schedules_slots_in_bulk() {
    let w = world().await;
    let ctx = Caller::system("setup");
    let role = json!({"resourceType": "PractitionerRole", "id": "gen-role", "active": true,
        "availability": [{"availableTime": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
            "availableStartTime": "08:00:00", "availableEndTime": "13:00:00"}]}]});
    let schedule = json!({"resourceType": "Schedule", "id": "gen", "active": true,
        "extension": [{"url": crate::SLOT_GENERATION_URL, "extension": [
            {"url": "slot-duration", "valueDuration": {"value": 30, "system": "http://unitsofmeasure.org", "code": "min"}}]}],
        "actor": [{"reference": "PractitionerRole/gen-role"}]});
    for resource in [role, schedule] {
        let rt: ResourceType = resource["resourceType"].as_str().unwrap().parse().unwrap();
        let id = resource["id"].as_str().unwrap().to_owned();
        w.service.resources.update(&ctx, rt, &id, object(resource), None).await.unwrap();
    }
    let probe = Arc::new(crate::test_support::ProbeStore::new(w.store.clone()));
    let service = Domain::new(probe.clone(), w.clock.clone(), ServiceConfig::default(), termin_search::registry());
    let week = crate::GenerationRequest {
        first: "2026-03-09".parse().unwrap(),
        last: "2026-03-13".parse().unwrap(),
        slot_length: None,
        dry_run: false,
    };
    let created = service.scheduling.generate_slots(&ctx, "gen", &week).await.unwrap();
    assert_eq!((created.created, created.kept, created.removed), (50, 0, 0));
    let calls = probe.take_reads();
    assert_eq!(calls.iter().filter(|c| *c == "overlap query").count(), 2, "{calls:?}");
    assert!(calls.contains(&"write 50".to_owned()), "{calls:?}");
    assert!(calls.len() < 15, "{calls:?}");

    let again = service.scheduling.generate_slots(&ctx, "gen", &week).await.unwrap();
    assert_eq!((again.created, again.kept, again.removed), (0, 50, 0));
    let calls = probe.take_reads();
    assert!(!calls.iter().any(|c| c.starts_with("write")), "{calls:?}");
    assert!(calls.len() < 15, "{calls:?}");
    let slots = w
        .store
        .read_current(
            &termin_store::RequestContext::anonymous("test"),
            ResourceType::Slot,
            &termin_calendar::generated_slot_id("gen", "2026-03-09T07:00:00Z".parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(slots.map(|v| v.version), Some(1));
}
