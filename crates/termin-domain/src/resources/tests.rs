use super::*;

use crate::{ServiceConfig, SystemClock};
use serde_json::json;
use crate::Caller;
use termin_store::{IndexEntries, ResourceStore, SystemMatch, TokenMatch};
use termin_store_sqlite::temporary::TemporaryStore;

fn ctx() -> Caller {
    Caller::anonymous("test")
}

fn object(value: Value) -> Map<String, Value> {
    let Value::Object(map) = value else { panic!("not an object") };
    map
}

/// The resource service over a fresh temporary store (kept alive by the second value).
async fn service(update_create: bool) -> (ResourceService, TemporaryStore) {
    let db = TemporaryStore::open().await.unwrap();
    let config = ServiceConfig { update_create, ..ServiceConfig::default() };
    (crate::Domain::new(db.store.clone(), Arc::new(SystemClock), config, termin_search::registry()).resources, db)
}

fn body_of(outcome: &WriteOutcome) -> Value {
    serde_json::from_str(outcome.version.body.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn unchanged_update_creates_no_version() {
    let (svc, _db) = service(true).await;
    let patient = json!({"resourceType": "Patient", "id": "p", "meta": {"profile": ["urn:x"]}, "active": true});
    let first = svc.update(&ctx(), ResourceType::Patient, "p", object(patient.clone()), None).await.unwrap();
    assert_eq!(first.status, WriteStatus::Created);
    let mut again = patient.clone();
    again["meta"]["versionId"] = json!("99");
    let second = svc.update(&ctx(), ResourceType::Patient, "p", object(again), None).await.unwrap();
    assert_eq!(second.status, WriteStatus::Unchanged);
    assert_eq!(second.version.version, 1);
    let mut changed = patient;
    changed["active"] = json!(false);
    let third = svc.update(&ctx(), ResourceType::Patient, "p", object(changed), None).await.unwrap();
    assert_eq!(third.version.version, 2);
    assert_eq!(body_of(&third)["meta"]["profile"][0], "urn:x");
    assert_eq!(body_of(&third)["meta"]["versionId"], "2");
}

#[tokio::test]
async fn stale_if_match_is_rejected_without_change() {
    let (svc, _db) = service(true).await;
    let p = json!({"resourceType": "Patient", "id": "p"});
    svc.update(&ctx(), ResourceType::Patient, "p", object(p), None).await.unwrap();
    let changed = json!({"resourceType": "Patient", "id": "p", "active": true});
    let err = svc
        .update(&ctx(), ResourceType::Patient, "p", object(changed.clone()), Some(7))
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::PreconditionFailed(_)));
    assert_eq!(svc.read(&ctx(), ResourceType::Patient, "p").await.unwrap().version, 1);
    let ok = svc.update(&ctx(), ResourceType::Patient, "p", object(changed), Some(1)).await.unwrap();
    assert_eq!(ok.version.version, 2);
}

#[tokio::test]
async fn conditional_create_returns_the_existing_match() {
    let (svc, _db) = service(true).await;
    let p = json!({"resourceType": "Patient", "identifier": [{"system": "urn:s", "value": "1"}]});
    let by_identifier = [Condition::TokenAny {
        param: "identifier".into(),
        alternatives: vec![TokenMatch { system: SystemMatch::Exactly("urn:s".into()), code: Some("1".into()) }],
    }];
    let first = svc.create(&ctx(), ResourceType::Patient, object(p.clone()), Some(&by_identifier)).await.unwrap();
    let second = svc.create(&ctx(), ResourceType::Patient, object(p.clone()), Some(&by_identifier)).await.unwrap();
    assert_eq!(first.status, WriteStatus::Created);
    assert_eq!(second.status, WriteStatus::AlreadyExists);
    assert_eq!(first.version.id, second.version.id);
    svc.create(&ctx(), ResourceType::Patient, object(p.clone()), None).await.unwrap();
    let third = svc.create(&ctx(), ResourceType::Patient, object(p), Some(&by_identifier)).await;
    assert!(matches!(third, Err(DomainError::PreconditionFailed(_))));
}

#[tokio::test]
async fn update_create_can_be_switched_off() {
    let (svc, _db) = service(false).await;
    let p = json!({"resourceType": "Patient", "id": "p"});
    let err = svc.update(&ctx(), ResourceType::Patient, "p", object(p), None).await.unwrap_err();
    assert!(matches!(err, DomainError::NotAllowed(_)));
}

#[tokio::test]
async fn delete_then_read_is_gone_and_recreate_works() {
    let (svc, _db) = service(true).await;
    let p = json!({"resourceType": "Patient", "id": "p"});
    svc.update(&ctx(), ResourceType::Patient, "p", object(p.clone()), None).await.unwrap();
    svc.delete(&ctx(), ResourceType::Patient, "p", None).await.unwrap();
    assert!(matches!(svc.read(&ctx(), ResourceType::Patient, "p").await, Err(DomainError::Gone(_))));
    assert!(matches!(svc.vread(&ctx(), ResourceType::Patient, "p", 2).await, Err(DomainError::Gone(_))));
    svc.delete(&ctx(), ResourceType::Patient, "p", None).await.unwrap();
    let again = svc.update(&ctx(), ResourceType::Patient, "p", object(p), None).await.unwrap();
    assert_eq!((again.status, again.version.version), (WriteStatus::Created, 3));
}

#[tokio::test]
async fn wrong_resource_type_is_invalid() {
    let (svc, _db) = service(true).await;
    let err = svc
        .create(&ctx(), ResourceType::Slot, object(json!({"resourceType": "Patient"})), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DomainError::Invalid(_)));
}

fn slot(id: &str) -> Map<String, Value> {
    object(json!({
        "resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/s"}, "status": "free",
        "start": "2026-12-01T09:00:00+01:00", "end": "2026-12-01T09:30:00+01:00"
    }))
}

#[tokio::test]
async fn import_applies_booking_rules_and_keeps_what_is_stored() {
    let (svc, _db) = service(true).await;
    let appointment = object(json!({
        "resourceType": "Appointment", "id": "a", "status": "booked", "slot": [{"reference": "Slot/s1"}],
        "start": "2026-12-01T09:00:00+01:00", "end": "2026-12-01T09:30:00+01:00",
        "participant": [{"actor": {"reference": "Patient/p"}, "status": "accepted"}]
    }));
    let batch = vec![slot("s1"), slot("s2"), appointment];
    let first = svc.import(&ctx(), batch.clone()).await.unwrap();
    assert_eq!(first, ImportSummary { created: 3, existing: 0 });
    // The booked appointment took its slot, as a PUT would have.
    let s1: Value = serde_json::from_str(svc.read(&ctx(), ResourceType::Slot, "s1").await.unwrap().body.as_deref().unwrap()).unwrap();
    assert_eq!(s1["status"], "busy");
    // Loading again leaves what is stored alone, even where it changed since (s1 is busy now).
    let again = svc.import(&ctx(), batch).await.unwrap();
    assert_eq!(again, ImportSummary { created: 0, existing: 3 });
    assert_eq!(svc.read(&ctx(), ResourceType::Slot, "s1").await.unwrap().version, 2);
}

#[tokio::test]
async fn import_writes_nothing_when_one_resource_is_bad() {
    let (svc, _db) = service(true).await;
    let nameless = object(json!({"resourceType": "Slot", "status": "free"}));
    let err = svc.import(&ctx(), vec![slot("s1"), nameless]).await.unwrap_err();
    assert!(matches!(err, DomainError::Invalid(_)), "{err:?}");
    assert!(matches!(svc.read(&ctx(), ResourceType::Slot, "s1").await, Err(DomainError::NotFound(_))));
    // A conflict found while writing (the slot is booked already) also rolls back the batch.
    let booking = |id: &str| {
        object(json!({
            "resourceType": "Appointment", "id": id, "status": "booked", "slot": [{"reference": "Slot/s1"}],
            "start": "2026-12-01T09:00:00+01:00", "end": "2026-12-01T09:30:00+01:00"
        }))
    };
    let err = svc.import(&ctx(), vec![slot("s1"), booking("a"), booking("b")]).await.unwrap_err();
    assert!(matches!(err, DomainError::Conflict(_)), "{err:?}");
    assert!(matches!(svc.read(&ctx(), ResourceType::Slot, "s1").await, Err(DomainError::NotFound(_))));
}

/// Locations stored before `near` was served have no position rows; the rebuild at start-up
/// (the fingerprint changed with the parameter) gives them theirs.
#[tokio::test]
async fn the_index_rebuild_gives_older_locations_their_positions() {
    let (svc, db) = service(true).await;
    let location = json!({"resourceType": "Location", "id": "graz", "position": {"latitude": 47.07, "longitude": 15.44}});
    svc.update(&ctx(), ResourceType::Location, "graz", object(location), None).await.unwrap();
    let store = db.store.clone();
    let mut tx = store.begin_write(&termin_store::RequestContext::anonymous("test")).await.unwrap();
    tx.replace_index(ResourceType::Location, "graz", &IndexEntries::default()).await.unwrap();
    tx.set_search_index_fingerprint("before near").await.unwrap();
    tx.commit().await.unwrap();
    let near_graz = within_20_km_of(termin_fhir::geo::Point { latitude: 47.0, longitude: 15.4 });
    assert!(svc.search(&ctx(), &near_graz).await.unwrap().matches.is_empty());
    assert_eq!(svc.refresh_search_index().await.unwrap(), 1);
    assert_eq!(svc.search(&ctx(), &near_graz).await.unwrap().matches[0].id, "graz");
}

fn within_20_km_of(centre: termin_fhir::geo::Point) -> SearchRequest {
    let area = termin_fhir::geo::Near { centre, radius_km: 20.0 };
    SearchRequest {
        resource_type: ResourceType::Location,
        filter: termin_store::Filter {
            conditions: vec![termin_store::Condition::Near { param: "near".into(), area }],
            now: jiff::Timestamp::now(),
            server_base: None,
        },
        sort: Vec::new(),
        count: 10,
        page: None,
        total: false,
        includes: Vec::new(),
        revincludes: Vec::new(),
    }
}
