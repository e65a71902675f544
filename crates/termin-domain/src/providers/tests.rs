use super::{IDS_PER_SEARCH, ProviderMatches, ProviderQuery, SLOTS_PER_PAGE};
use crate::{Clock, HoldOutcome, ResourceService, ServiceConfig, SlotSelector};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use termin_fhir::ResourceType;
use termin_store::{RequestContext, SystemMatch, TokenMatch};
use termin_store_sqlite::SqliteStore;

const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";
const HOLD: SignedDuration = SignedDuration::from_mins(10);

/// A clock the test moves by hand; it starts on Monday 2026-03-02, 09:00 in Vienna.
struct ManualClock(Mutex<Timestamp>);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

struct World {
    service: ResourceService,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), 2).await.unwrap();
        let clock = Arc::new(ManualClock(Mutex::new("2026-03-02T08:00:00Z".parse().unwrap())));
        let service = ResourceService::new(
            Arc::new(store),
            clock.clone(),
            ServiceConfig { hold_duration: HOLD, ..ServiceConfig::default() },
        );
        World { service, clock, _dir: dir }
    }

    async fn put(&self, resource: Value) {
        let resource_type: ResourceType = resource["resourceType"].as_str().unwrap().parse().unwrap();
        let id = resource["id"].as_str().unwrap().to_owned();
        let Value::Object(body) = resource else { panic!("not an object") };
        self.service.update(&RequestContext::system("setup"), resource_type, &id, body, None).await.unwrap();
    }

    async fn slot(&self, id: &str, schedule: &str, status: &str, start: &str, end: &str) {
        self.put(json!({"resourceType": "Slot", "id": id, "status": status,
            "schedule": {"reference": format!("Schedule/{schedule}")}, "start": start, "end": end}))
            .await;
    }

    /// Physiotherapy (service type 65) near zip area 53, on the given Vienna weekday mornings.
    async fn find(&self, days: &[&str]) -> ProviderMatches {
        let query = ProviderQuery {
            types: vec![TokenMatch { system: SystemMatch::Exactly(SERVICE_TYPE.into()), code: Some("65".into()) }],
            zip_areas: vec!["53".into()],
            availability: vec![json!({"availableTime": [{"daysOfWeek": days,
                "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]})],
            ..ProviderQuery::default()
        };
        self.service.find_providers(&RequestContext::anonymous("client"), &query).await.unwrap()
    }
}

fn physio_service(id: &str, name: &str, organization: &str) -> Value {
    json!({"resourceType": "HealthcareService", "id": id, "active": true, "name": name,
        "providedBy": {"reference": format!("Organization/{organization}")},
        "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]})
}

fn organization(id: &str, zip: &str) -> Value {
    json!({"resourceType": "Organization", "id": id, "contact": [{"address": {"postalCode": zip}}]})
}

fn labels(answer: &ProviderMatches) -> Vec<(String, Vec<String>)> {
    answer
        .services
        .iter()
        .map(|m| {
            let providers = m.providers.iter().map(|p| format!("{}/{}", p.resource_type.as_str(), p.id)).collect();
            (m.service.id.clone(), providers)
        })
        .collect()
}

fn note_texts(answer: &ProviderMatches) -> Vec<String> {
    answer.notes.iter().map(|n| format!("{n:?}")).collect()
}

/// Providers of several services are looked up together, yet each service gets exactly its
/// own: roles offering it at a wanted place, their earliest free slot across the role's and the
/// Practitioner's Schedules, and the operator's Schedules by `actor` or `serviceType`.
#[tokio::test]
async fn each_service_gets_its_own_providers_and_earliest_slots() {
    let w = World::new().await;
    w.put(organization("org-a", "5350")).await;
    w.put(organization("org-far", "1010")).await;
    w.put(physio_service("physio", "Physio", "org-a")).await;
    w.put(physio_service("massage", "Massage", "org-a")).await;
    w.put(physio_service("vienna", "Vienna", "org-far")).await;
    for practitioner in ["p1", "p2", "p3"] {
        w.put(json!({"resourceType": "Practitioner", "id": practitioner})).await;
    }
    // r1 offers both services; r2 works far away; r3 names no place and inherits its service's,
    // and declares Tuesday mornings.
    w.put(json!({"resourceType": "PractitionerRole", "id": "r1", "active": true,
        "practitioner": {"reference": "Practitioner/p1"}, "organization": {"reference": "Organization/org-a"},
        "healthcareService": [{"reference": "HealthcareService/physio"}, {"reference": "HealthcareService/massage"}]}))
        .await;
    w.put(json!({"resourceType": "PractitionerRole", "id": "r2", "active": true,
        "practitioner": {"reference": "Practitioner/p2"}, "organization": {"reference": "Organization/org-far"},
        "healthcareService": [{"reference": "HealthcareService/physio"}]}))
        .await;
    w.put(json!({"resourceType": "PractitionerRole", "id": "r3", "active": true,
        "practitioner": {"reference": "Practitioner/p3"},
        "healthcareService": [{"reference": "HealthcareService/massage"}],
        "availability": [{"availableTime": [{"daysOfWeek": ["tue"], "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]}]}))
        .await;
    w.put(json!({"resourceType": "Schedule", "id": "s-r1", "active": true, "actor": [{"reference": "PractitionerRole/r1"}]})).await;
    w.put(json!({"resourceType": "Schedule", "id": "s-p1", "active": true, "actor": [{"reference": "Practitioner/p1"}]})).await;
    w.put(json!({"resourceType": "Schedule", "id": "s-r2", "active": true, "actor": [{"reference": "PractitionerRole/r2"}]})).await;
    w.put(json!({"resourceType": "Schedule", "id": "s-physio", "active": true,
        "serviceType": [{"reference": {"reference": "HealthcareService/physio"}}]}))
        .await;
    // Neither an inactive Schedule nor one naming r1 on another server counts.
    w.put(json!({"resourceType": "Schedule", "id": "s-old", "active": false, "actor": [{"reference": "PractitionerRole/r1"}]})).await;
    w.put(json!({"resourceType": "Schedule", "id": "s-elsewhere", "active": true,
        "actor": [{"reference": "https://elsewhere.example/fhir/PractitionerRole/r1"}]}))
        .await;
    // Tuesday 2026-03-03, 08:00–08:30 in Vienna: the earliest of all, but busy or not counting.
    for (slot, schedule, status) in [("blocked", "s-r1", "busy-unavailable"), ("old", "s-old", "free"), ("elsewhere", "s-elsewhere", "free"), ("far", "s-r2", "free")] {
        w.slot(slot, schedule, status, "2026-03-03T07:00:00Z", "2026-03-03T07:30:00Z").await;
    }
    // Monday 11:45–12:15 overlaps the end of a wanted morning, so it is not inside it.
    w.slot("overlapping", "s-r1", "free", "2026-03-09T10:45:00Z", "2026-03-09T11:15:00Z").await;
    w.slot("r1-tuesday", "s-r1", "free", "2026-03-10T08:00:00Z", "2026-03-10T08:30:00Z").await;
    w.slot("p1-tuesday", "s-p1", "free", "2026-03-03T10:00:00Z", "2026-03-03T10:30:00Z").await;
    w.slot("physio-tuesday", "s-physio", "free", "2026-03-17T08:00:00Z", "2026-03-17T08:30:00Z").await;

    let answer = w.find(&["mon", "tue"]).await;
    assert_eq!(
        labels(&answer),
        [
            ("massage".to_owned(), vec![
                "PractitionerRole/r1".to_owned(),
                "Practitioner/p1".into(),
                "Organization/org-a".into(),
                "PractitionerRole/r3".into(),
                "Practitioner/p3".into(),
            ]),
            ("physio".to_owned(), vec!["PractitionerRole/r1".to_owned(), "Practitioner/p1".into(), "Organization/org-a".into()]),
        ]
    );
    let tuesday: Timestamp = "2026-03-03T10:00:00Z".parse().unwrap();
    assert!(answer.services.iter().all(|m| m.earliest_free == Some(tuesday)));
    let notes = note_texts(&answer);
    let r1_notes = notes.iter().filter(|n| n.contains("PractitionerRole/r1: earliest free slot Slot/p1-tuesday")).count();
    assert_eq!(r1_notes, 2, "{notes:#?}");
    assert!(notes.iter().any(|n| n.contains("Organization/org-a: earliest free slot Slot/physio-tuesday")), "{notes:#?}");

    // On Mondays only r1's overlapping slot is near, and nobody declares Mondays.
    let mondays = w.find(&["mon"]).await;
    assert!(mondays.services.is_empty(), "{:?}", labels(&mondays));
}

/// A held slot is not free; once the hold expires it is, before any sweeper has run.
#[tokio::test]
async fn a_slot_whose_hold_expired_counts_as_free() {
    let w = World::new().await;
    w.put(organization("org-a", "5350")).await;
    w.put(json!({"resourceType": "HealthcareService", "id": "physio", "active": true, "name": "Physio",
        "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]}))
        .await;
    w.put(json!({"resourceType": "PractitionerRole", "id": "r1", "active": true,
        "organization": {"reference": "Organization/org-a"},
        "healthcareService": [{"reference": "HealthcareService/physio"}]}))
        .await;
    w.put(json!({"resourceType": "Schedule", "id": "s-r1", "active": true, "actor": [{"reference": "PractitionerRole/r1"}]})).await;
    w.slot("tuesday", "s-r1", "free", "2026-03-03T08:00:00Z", "2026-03-03T08:30:00Z").await;
    let held = w.service.hold_slot(&RequestContext::anonymous("client"), &SlotSelector::Id("tuesday".into()), true).await.unwrap();
    assert!(matches!(held, HoldOutcome::Held { .. }), "{held:?}");

    assert!(w.find(&["tue"]).await.services.is_empty());
    *w.clock.0.lock().unwrap() += HOLD + SignedDuration::from_secs(1);
    let answer = w.find(&["tue"]).await;
    assert_eq!(labels(&answer), [("physio".to_owned(), vec!["PractitionerRole/r1".to_owned(), "Organization/org-a".into()])]);
    assert!(note_texts(&answer).iter().any(|n| n.contains("Slot/tuesday")), "{:?}", note_texts(&answer));
}

/// More providers than one search names ids for, and more slots than one page holds, whose
/// first page resolves only some of the schedules.
#[tokio::test]
async fn many_providers_are_searched_in_chunks_and_pages() {
    let w = World::new().await;
    let count = IDS_PER_SEARCH + 1;
    assert!(2 * count > SLOTS_PER_PAGE);
    w.put(organization("org-a", "5350")).await;
    for i in 0..count {
        w.put(physio_service(&format!("svc-{i:03}"), &format!("Service {i:03}"), "org-a")).await;
        w.put(json!({"resourceType": "Practitioner", "id": format!("p-{i:03}")})).await;
        w.put(json!({"resourceType": "PractitionerRole", "id": format!("r-{i:03}"), "active": true,
            "practitioner": {"reference": format!("Practitioner/p-{i:03}")},
            "organization": {"reference": "Organization/org-a"},
            "healthcareService": [{"reference": format!("HealthcareService/svc-{i:03}")}]}))
            .await;
        let schedule = format!("s-{i:03}");
        w.put(json!({"resourceType": "Schedule", "id": schedule, "active": true,
            "actor": [{"reference": format!("PractitionerRole/r-{i:03}")}]}))
            .await;
        // Starts inside Tuesday morning but ends after it; the next Tuesday's slot fits.
        w.slot(&format!("late-{i:03}"), &schedule, "free", "2026-03-03T10:45:00Z", "2026-03-03T11:15:00Z").await;
        w.slot(&format!("fits-{i:03}"), &schedule, "free", "2026-03-10T08:00:00Z", "2026-03-10T08:30:00Z").await;
    }

    let answer = w.find(&["tue"]).await;
    assert_eq!(answer.services.len(), count);
    let next_tuesday: Timestamp = "2026-03-10T08:00:00Z".parse().unwrap();
    for (i, found) in labels(&answer).into_iter().enumerate() {
        assert_eq!(
            found,
            (format!("svc-{i:03}"), vec![format!("PractitionerRole/r-{i:03}"), format!("Practitioner/p-{i:03}"), "Organization/org-a".into()])
        );
        assert_eq!(answer.services[i].earliest_free, Some(next_tuesday));
    }
    let notes = note_texts(&answer);
    assert!((0..count).all(|i| notes.iter().any(|n| n.contains(&format!("PractitionerRole/r-{i:03}: earliest free slot Slot/fits-{i:03}")))));
}
