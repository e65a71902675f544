use super::{BusinessIdentifier, FREE_SLOTS_PER_PROBE, IDS_PER_SEARCH, ProviderMatches, ProviderQuery};
use crate::Caller;
use crate::{Clock, Domain, HoldOutcome, ServiceConfig, SlotSelector};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use termin_fhir::ResourceType;
use termin_fhir::geo::Point;
use termin_store::{SystemMatch, TokenMatch};
use termin_store_sqlite::temporary::TemporaryStore;

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
    service: Domain,
    clock: Arc<ManualClock>,
    _db: TemporaryStore,
}

impl World {
    async fn new() -> World {
        let db = TemporaryStore::open().await.unwrap();
        let clock = Arc::new(ManualClock(Mutex::new("2026-03-02T08:00:00Z".parse().unwrap())));
        let service = Domain::new(
            db.store.clone(),
            clock.clone(),
            ServiceConfig { hold_duration: HOLD, ..ServiceConfig::default() },
            termin_search::registry(),
        );
        World { service, clock, _db: db }
    }

    async fn put(&self, resource: Value) {
        let resource_type: ResourceType = resource["resourceType"].as_str().unwrap().parse().unwrap();
        let id = resource["id"].as_str().unwrap().to_owned();
        let Value::Object(body) = resource else { panic!("not an object") };
        self.service.resources.update(&Caller::system("setup"), resource_type, &id, body, None).await.unwrap();
    }

    /// Organization org-a (5350) offering physio (type 65) through role r1 with Schedule s-r1.
    async fn one_physiotherapist(&self) {
        self.put(organization("org-a", "5350")).await;
        self.put(json!({"resourceType": "HealthcareService", "id": "physio", "active": true, "name": "Physio",
        "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]}))
            .await;
        self.put(json!({"resourceType": "PractitionerRole", "id": "r1", "active": true,
        "organization": {"reference": "Organization/org-a"},
        "healthcareService": [{"reference": "HealthcareService/physio"}]}))
            .await;
        self.put(json!({"resourceType": "Schedule", "id": "s-r1", "active": true, "actor": [{"reference": "PractitionerRole/r1"}]})).await;
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
        self.service.providers.find_providers(&Caller::anonymous("client"), &query).await.unwrap()
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
    w.put(
        json!({"resourceType": "Schedule", "id": "s-p1", "active": true, "actor": [{"reference": "Practitioner/p1"}]}),
    )
    .await;
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
    for (slot, schedule, status) in [
        ("blocked", "s-r1", "busy-unavailable"),
        ("old", "s-old", "free"),
        ("elsewhere", "s-elsewhere", "free"),
        ("far", "s-r2", "free"),
    ] {
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
            (
                "massage".to_owned(),
                vec![
                    "PractitionerRole/r1".to_owned(),
                    "Practitioner/p1".into(),
                    "Organization/org-a".into(),
                    "PractitionerRole/r3".into(),
                    "Practitioner/p3".into(),
                ]
            ),
            (
                "physio".to_owned(),
                vec!["PractitionerRole/r1".to_owned(), "Practitioner/p1".into(), "Organization/org-a".into()]
            ),
        ]
    );
    let tuesday: Timestamp = "2026-03-03T10:00:00Z".parse().unwrap();
    assert!(answer.services.iter().all(|m| m.earliest_free == Some(tuesday)));
    let notes = note_texts(&answer);
    let r1_notes =
        notes.iter().filter(|n| n.contains("PractitionerRole/r1: earliest free slot Slot/p1-tuesday")).count();
    assert_eq!(r1_notes, 2, "{notes:#?}");
    assert!(
        notes.iter().any(|n| n.contains("Organization/org-a: earliest free slot Slot/physio-tuesday")),
        "{notes:#?}"
    );
    // The same, structured per service.
    let physio = answer.services.iter().find(|m| m.service.id == "physio").unwrap();
    let earliest: Vec<(&str, &str)> =
        physio.earliest_free_slots.iter().map(|e| (e.provider.as_str(), e.slot_id.as_str())).collect();
    assert!(
        earliest.contains(&("PractitionerRole/r1", "p1-tuesday"))
            && earliest.contains(&("Organization/org-a", "physio-tuesday")),
        "{earliest:?}"
    );
    assert_eq!(
        physio.earliest_free_slots.iter().map(|e| e.start).min(),
        physio.earliest_free,
        "the service's earliest is its providers' earliest"
    );

    // On Mondays only r1's overlapping slot is near, and nobody declares Mondays.
    let mondays = w.find(&["mon"]).await;
    assert!(mondays.services.is_empty(), "{:?}", labels(&mondays));
}

/// A role at a wanted place is found although its service is elsewhere; a role naming no place
/// inherits its service's (also by `coverageArea`); an absolute reference names another
/// server's Location, even with a wanted id.
#[tokio::test]
async fn roles_and_services_are_placed_by_their_local_references() {
    let w = World::new().await;
    w.put(organization("org-far", "1010")).await;
    w.put(json!({"resourceType": "Location", "id": "loc-53", "address": {"postalCode": "5310"}})).await;
    w.put(physio_service("elsewhere", "Elsewhere", "org-far")).await;
    let mut covered = physio_service("covered", "Covered", "org-far");
    covered["coverageArea"] = json!([{"reference": "Location/loc-53"}]);
    w.put(covered).await;
    let tuesdays = json!([{"availableTime": [{"daysOfWeek": ["tue"],
        "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]}]);
    for (id, service, location) in [
        ("r-here", "elsewhere", Some("Location/loc-53")),
        ("r-absolute", "elsewhere", Some("https://elsewhere.example/fhir/Location/loc-53")),
        ("r-inherits-far", "elsewhere", None),
        ("r-inherits-covered", "covered", None),
    ] {
        let mut role = json!({"resourceType": "PractitionerRole", "id": id, "active": true,
            "healthcareService": [{"reference": format!("HealthcareService/{service}")}], "availability": tuesdays});
        if let Some(location) = location {
            role["location"] = json!([{"reference": location}]);
        }
        w.put(role).await;
    }

    let answer = w.find(&["tue"]).await;
    assert_eq!(
        labels(&answer),
        [
            (
                "covered".to_owned(),
                vec!["Organization/org-far".to_owned(), "PractitionerRole/r-inherits-covered".into()]
            ),
            ("elsewhere".to_owned(), vec!["PractitionerRole/r-here".to_owned()]),
        ]
    );
}

/// A held slot is not free; once the hold expires it is, before any sweeper has run.
#[tokio::test]
async fn a_slot_whose_hold_expired_counts_as_free() {
    let w = World::new().await;
    w.one_physiotherapist().await;
    w.slot("tuesday", "s-r1", "free", "2026-03-03T08:00:00Z", "2026-03-03T08:30:00Z").await;
    let held = w
        .service
        .scheduling
        .hold_slot(&Caller::anonymous("client"), &SlotSelector::Id("tuesday".into()), true)
        .await
        .unwrap();
    assert!(matches!(held, HoldOutcome::Held { .. }), "{held:?}");

    assert!(w.find(&["tue"]).await.services.is_empty());
    *w.clock.0.lock().unwrap() += HOLD + SignedDuration::from_secs(1);
    let answer = w.find(&["tue"]).await;
    assert_eq!(
        labels(&answer),
        [("physio".to_owned(), vec!["PractitionerRole/r1".to_owned(), "Organization/org-a".into()])]
    );
    assert!(note_texts(&answer).iter().any(|n| n.contains("Slot/tuesday")), "{:?}", note_texts(&answer));
}

/// More providers than one search names ids for, each Schedule's first free slot not fitting.
#[tokio::test]
async fn many_providers_are_searched_in_chunks() {
    let w = World::new().await;
    let count = IDS_PER_SEARCH + 1;
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
            (
                format!("svc-{i:03}"),
                vec![
                    format!("PractitionerRole/r-{i:03}"),
                    format!("Practitioner/p-{i:03}"),
                    "Organization/org-a".into()
                ]
            )
        );
        assert_eq!(answer.services[i].earliest_free, Some(next_tuesday));
    }
    let notes = note_texts(&answer);
    assert!((0..count).all(|i| {
        notes.iter().any(|n| n.contains(&format!("PractitionerRole/r-{i:03}: earliest free slot Slot/fits-{i:03}")))
    }));
}

/// A Schedule whose first page of free slots in the wanted time holds none that fits (each
/// ends after the morning) gets its earliest from a later page; blocked slots never count.
#[tokio::test]
async fn a_schedule_probe_pages_past_slots_that_do_not_fit() {
    let w = World::new().await;
    w.one_physiotherapist().await;
    w.slot("blocked-first", "s-r1", "busy-unavailable", "2026-03-03T07:00:00Z", "2026-03-03T07:30:00Z").await;
    // One slot a day from Tuesday 2026-03-03 that starts inside the morning (08:00–12:00 in
    // Vienna, 07:00–11:00Z before daylight saving time) but ends after it.
    const { assert!(FREE_SLOTS_PER_PROBE < 5, "the late slots must fit into the week before the fitting one") };
    for day in 0..=FREE_SLOTS_PER_PROBE {
        let date = format!("2026-03-{:02}", 3 + day);
        w.slot(&format!("late-{day}"), "s-r1", "free", &format!("{date}T10:45:00Z"), &format!("{date}T11:15:00Z"))
            .await;
    }
    w.slot("fits", "s-r1", "free", "2026-03-10T08:00:00Z", "2026-03-10T08:30:00Z").await;
    w.slot("fits-later", "s-r1", "free", "2026-03-10T09:00:00Z", "2026-03-10T09:30:00Z").await;

    let answer = w.find(&["mon", "tue", "wed", "thu", "fri", "sat", "sun"]).await;
    assert_eq!(answer.services.len(), 1);
    assert_eq!(answer.services[0].earliest_free, Some("2026-03-10T08:00:00Z".parse().unwrap()));
    let earliest: Vec<&str> = answer.services[0].earliest_free_slots.iter().map(|e| e.slot_id.as_str()).collect();
    assert_eq!(earliest, ["fits"]);
}

/// Physiotherapy on Tuesday mornings, looking ahead until the given date or dateTime.
fn tuesdays_until(until: Option<&str>) -> ProviderQuery {
    ProviderQuery {
        types: vec![TokenMatch { system: SystemMatch::Exactly(SERVICE_TYPE.into()), code: Some("65".into()) }],
        availability: vec![json!({"availableTime": [{"daysOfWeek": ["tue"],
            "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"}]})],
        until: until.map(str::to_owned),
        ..ProviderQuery::default()
    }
}

/// The horizon is 28 days unless `availability-until` moves it, up to 90 days ahead.
#[tokio::test]
async fn availability_until_sets_how_far_ahead_to_look() {
    let w = World::new().await;
    w.one_physiotherapist().await;
    // Tuesday 2026-04-07, 36 days after the clock's Monday.
    w.slot("in-april", "s-r1", "free", "2026-04-07T08:00:00Z", "2026-04-07T08:30:00Z").await;
    let ctx = Caller::anonymous("client");

    let default = w.service.providers.find_providers(&ctx, &tuesdays_until(None)).await.unwrap();
    assert!(default.services.is_empty(), "{:?}", labels(&default));
    let day_before = w.service.providers.find_providers(&ctx, &tuesdays_until(Some("2026-04-06"))).await.unwrap();
    assert!(day_before.services.is_empty(), "{:?}", labels(&day_before));
    // A date includes its whole day.
    let that_day = w.service.providers.find_providers(&ctx, &tuesdays_until(Some("2026-04-07"))).await.unwrap();
    assert_eq!(
        labels(&that_day),
        [("physio".to_owned(), vec!["PractitionerRole/r1".to_owned(), "Organization/org-a".into()])]
    );
    assert_eq!(that_day.services[0].earliest_free, Some("2026-04-07T08:00:00Z".parse().unwrap()));

    for refused in ["2026-06-01", "2026-03-01", "next week"] {
        let err = w.service.providers.find_providers(&ctx, &tuesdays_until(Some(refused))).await.unwrap_err();
        assert!(matches!(err, crate::DomainError::Invalid(_)), "{refused}: {err:?}");
        assert!(format!("{err:?}").contains("availability-until"), "{refused}: {err:?}");
    }
    // The end of 2026-05-30 lies just within 90 days of the clock.
    assert!(w.service.providers.find_providers(&ctx, &tuesdays_until(Some("2026-05-30"))).await.is_ok());
}

/// A service named by business identifier: the one with it, else 422 (none, several, inactive).
#[tokio::test]
async fn a_service_is_found_by_its_identifier() {
    let w = World::new().await;
    let with_identifier = |id: &str, value: &str, active: bool| {
        json!({"resourceType": "HealthcareService", "id": id, "active": active,
            "identifier": [{"system": "urn:services", "value": value}],
            "providedBy": {"reference": "Organization/org-a"},
            "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]})
    };
    w.put(organization("org-a", "5350")).await;
    w.put(with_identifier("physio", "p-1", true)).await;
    w.put(with_identifier("twin-a", "twin", true)).await;
    w.put(with_identifier("twin-b", "twin", true)).await;
    w.put(with_identifier("closed", "c-1", false)).await;
    let ctx = Caller::anonymous("client");
    let by = |system: Option<&str>, value: &str| ProviderQuery {
        service_identifier: Some(BusinessIdentifier { system: system.map(str::to_owned), value: value.into() }),
        ..ProviderQuery::default()
    };

    for query in [by(Some("urn:services"), "p-1"), by(None, "p-1")] {
        let found = w.service.providers.find_providers(&ctx, &query).await.unwrap();
        assert_eq!(found.services.iter().map(|m| m.service.id.as_str()).collect::<Vec<_>>(), ["physio"]);
    }
    for (query, says) in [
        (by(Some("urn:other"), "p-1"), "No HealthcareService has the identifier urn:other|p-1"),
        (by(Some("urn:services"), "twin"), "Several HealthcareServices"),
        (by(Some("urn:services"), "c-1"), "HealthcareService/closed is not active"),
    ] {
        let err = w.service.providers.find_providers(&ctx, &query).await.unwrap_err();
        assert!(matches!(err, crate::DomainError::Unprocessable(_)), "{err:?}");
        let text = format!("{err:?}");
        assert!(text.contains(says) && text.contains("healthcareService-reference"), "{text}");
    }
}

/// Near a point: providers at Locations within the radius, nearest first (before earlier free
/// slots); Locations without a position never match; a wanted Location with a position is a
/// centre too.
#[tokio::test]
async fn near_finds_providers_within_the_distance_nearest_first() {
    let w = World::new().await;
    let place = |id: &str, position: Option<(f64, f64)>| {
        let mut location = json!({"resourceType": "Location", "id": id});
        if let Some((latitude, longitude)) = position {
            location["position"] = json!({"latitude": latitude, "longitude": longitude});
        }
        location
    };
    w.put(place("st-wolfgang", Some((47.7394, 13.4478)))).await;
    w.put(place("bad-ischl", Some((47.7111, 13.6197)))).await;
    w.put(place("vienna", Some((48.2082, 16.3738)))).await;
    w.put(place("nowhere", None)).await;
    for (service, location) in
        [("at-ischl", "bad-ischl"), ("at-wolfgang", "st-wolfgang"), ("at-vienna", "vienna"), ("unplaced", "nowhere")]
    {
        w.put(json!({"resourceType": "HealthcareService", "id": service, "active": true, "name": service,
            "location": [{"reference": format!("Location/{location}")}],
            "type": [{"coding": [{"system": SERVICE_TYPE, "code": "65"}]}]}))
            .await;
        w.put(json!({"resourceType": "PractitionerRole", "id": format!("r-{service}"), "active": true,
            "location": [{"reference": format!("Location/{location}")}],
            "healthcareService": [{"reference": format!("HealthcareService/{service}")}]}))
            .await;
        w.put(json!({"resourceType": "Schedule", "id": format!("s-{service}"), "active": true,
            "actor": [{"reference": format!("PractitionerRole/r-{service}")}]}))
            .await;
    }
    // Bad Ischl has the earlier slot, yet St. Wolfgang is nearer.
    w.slot("ischl-early", "s-at-ischl", "free", "2026-03-03T08:00:00Z", "2026-03-03T08:30:00Z").await;
    w.slot("wolfgang-late", "s-at-wolfgang", "free", "2026-03-10T08:00:00Z", "2026-03-10T08:30:00Z").await;
    let ctx = Caller::anonymous("client");
    let physio = vec![TokenMatch { system: SystemMatch::Exactly(SERVICE_TYPE.into()), code: Some("65".into()) }];
    let services = |answer: &ProviderMatches| answer.services.iter().map(|m| m.service.id.clone()).collect::<Vec<_>>();

    let near_wolfgang = |radius_km: Option<f64>| ProviderQuery {
        types: physio.clone(),
        near: Some(Point { latitude: 47.74, longitude: 13.45 }),
        radius_km,
        ..ProviderQuery::default()
    };
    let within_20 = w.service.providers.find_providers(&ctx, &near_wolfgang(Some(20.0))).await.unwrap();
    assert_eq!(services(&within_20), ["at-wolfgang", "at-ischl"]);
    assert_eq!(within_20.services[0].providers[0].id, "r-at-wolfgang");
    // The default radius, 10 km, leaves Bad Ischl (about 13 km) out.
    let within_default = w.service.providers.find_providers(&ctx, &near_wolfgang(None)).await.unwrap();
    assert_eq!(services(&within_default), ["at-wolfgang"]);
    let within_300 = w.service.providers.find_providers(&ctx, &near_wolfgang(Some(300.0))).await.unwrap();
    assert_eq!(services(&within_300), ["at-wolfgang", "at-ischl", "at-vienna"]);

    // A wanted Location with a position: itself and what lies within the radius around it.
    let around_ischl = ProviderQuery {
        types: physio.clone(),
        locations: vec![super::LocationSelector::Id("bad-ischl".into())],
        radius_km: Some(20.0),
        ..ProviderQuery::default()
    };
    let found = w.service.providers.find_providers(&ctx, &around_ischl).await.unwrap();
    assert_eq!(services(&found), ["at-ischl", "at-wolfgang"]);
    // A wanted Location without a position matches only itself.
    let at_nowhere = ProviderQuery {
        types: physio,
        locations: vec![super::LocationSelector::Id("nowhere".into())],
        ..ProviderQuery::default()
    };
    assert_eq!(services(&w.service.providers.find_providers(&ctx, &at_nowhere).await.unwrap()), ["unplaced"]);
}

#[tokio::test]
async fn a_storage_failure_is_an_error_not_an_unknown_service_or_location() {
    let db = TemporaryStore::open().await.unwrap();
    let probe = Arc::new(crate::test_support::ProbeStore::new(db.store.clone()));
    let service =
        Domain::new(probe.clone(), Arc::new(crate::SystemClock), ServiceConfig::default(), termin_search::registry());
    let ctx = Caller::anonymous("client");
    let by_reference =
        ProviderQuery { service_reference: Some("HealthcareService/physio".into()), ..ProviderQuery::default() };
    let by_location = ProviderQuery {
        types: vec![TokenMatch { system: SystemMatch::Exactly(SERVICE_TYPE.into()), code: Some("65".into()) }],
        locations: vec![super::LocationSelector::Id("vienna".into())],
        ..ProviderQuery::default()
    };
    // Unknown here (an empty store): a 422 for the service, a note for the Location.
    assert!(matches!(
        service.providers.find_providers(&ctx, &by_reference).await,
        Err(crate::DomainError::Unprocessable(_))
    ));
    assert!(service.providers.find_providers(&ctx, &by_location).await.is_ok());
    probe.fail_reads_of(ResourceType::HealthcareService);
    assert!(matches!(
        service.providers.find_providers(&ctx, &by_reference).await,
        Err(crate::DomainError::Unavailable(_))
    ));
    probe.fail_reads_of(ResourceType::Location);
    assert!(matches!(
        service.providers.find_providers(&ctx, &by_location).await,
        Err(crate::DomainError::Unavailable(_))
    ));
}
