//! What this backend guarantees across connections (and so across nodes), and the store
//! conformance kit every backend runs (`termin_store_sql::conformance`).
//!
//! Each test runs on its own scratch database. Without a reachable PostgreSQL the tests are
//! skipped with the reason printed, except under `CI=true`, where that is a failure.

use super::*;
use crate::scratch::ScratchDatabase;
use jiff::Timestamp;
use sqlx::Connection;
use std::sync::Arc;
use termin_fhir::ResourceType;
use termin_store::{
    AppointmentId, ChangeKind, Condition, DomainEvent, Filter, IndexEntries, NewVersion, ResourceStore,
    ResourceVersion, SlotId, SystemMatch, TokenMatch, WriteTx,
};
use termin_store_sql::conformance::{Fixture, ctx, patient};

/// A store on a fresh database, dropped with it.
struct Scratch {
    store: Arc<PostgresStore>,
    database: Option<ScratchDatabase>,
}

impl Scratch {
    async fn open() -> Option<Scratch> {
        let database = match ScratchDatabase::create("termin_unit").await {
            Ok(database) => database,
            Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL is required under CI=true: {reason}")
            }
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return None;
            }
        };
        let store = PostgresStore::open(&database.url, 4).await.unwrap();
        Some(Scratch { store: Arc::new(store), database: Some(database) })
    }

    async fn second_store(&self) -> PostgresStore {
        PostgresStore::open(&self.url(), 4).await.unwrap()
    }

    fn url(&self) -> String {
        self.database.as_ref().map(|d| d.url.clone()).unwrap_or_default()
    }

    /// Every unit of work must be dropped first: closing waits for their connections.
    async fn close(mut self) {
        self.store.pool.close().await;
        if let Some(database) = self.database.take() {
            database.drop_database().await.unwrap();
        }
    }
}

impl Fixture for Scratch {
    async fn open() -> Option<Self> {
        Scratch::open().await
    }

    fn store(&self) -> &dyn ResourceStore {
        &*self.store
    }

    async fn close(self) {
        Scratch::close(self).await
    }
}

mod conformance {
    termin_store_sql::store_conformance!(super::Scratch);

    #[tokio::test]
    async fn mail_is_queued_once_and_sent_under_leases() {
        let Some(scratch) = super::Scratch::open().await else { return };
        let store = &*scratch.store;
        termin_store_sql::conformance::mail_is_queued_once_and_sent_under_leases(store, store).await;
        scratch.close().await;
    }
}

fn identifier_filter(code: &str) -> Filter {
    Filter {
        conditions: vec![Condition::TokenAny {
            param: "identifier".into(),
            alternatives: vec![TokenMatch { system: SystemMatch::Exactly("urn:sys".into()), code: Some(code.into()) }],
        }],
        now: Timestamp::now(),
        server_base: None,
    }
}

async fn write_committed(store: &PostgresStore, new: NewVersion) {
    let mut tx = store.begin_write(&ctx()).await.unwrap();
    tx.write(new).await.unwrap();
    tx.commit().await.unwrap();
}

/// Waits until some session of the database waits for a lock (the only way to know that a
/// spawned unit of work has reached its blocking statement); bounded by the test's limits.
async fn until_someone_waits_for_a_lock(url: &str) {
    let mut observer = sqlx::PgConnection::connect(url).await.unwrap();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND a.datname = current_database()",
        )
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn job_leases_have_one_owner_at_a_time() {
    let Some(db) = Scratch::open().await else { return };
    termin_store_sql::lease::check_leases(&*db.store).await;
    db.close().await;
}

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let Some(db) = Scratch::open().await else { return };
    let url = db.url();
    let (a, b, c) =
        tokio::join!(PostgresStore::open(&url, 2), PostgresStore::open(&url, 2), PostgresStore::open(&url, 2));
    for store in [a, b, c] {
        store.unwrap().pool.close().await;
    }
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM termin_schema_version").fetch_one(&db.store.pool).await.unwrap();
    assert_eq!(applied, 9, "each of the nine migrations once");
    db.close().await;
}

#[tokio::test]
async fn writers_of_one_resource_on_two_nodes_take_turns() {
    let Some(db) = Scratch::open().await else { return };
    let other_node = db.second_store().await;
    write_committed(&db.store, patient("p1", 1, None)).await;
    let mut first = db.store.begin_write(&ctx()).await.unwrap();
    let current = first.read_current(ResourceType::Patient, "p1").await.unwrap().unwrap();
    let second = tokio::spawn(async move {
        let mut tx = other_node.begin_write(&ctx()).await.unwrap();
        let seen = tx.read_current(ResourceType::Patient, "p1").await.unwrap().unwrap();
        tx.write(patient("p1", seen.version + 1, None)).await.unwrap();
        tx.commit().await.unwrap();
        seen.version
    });
    until_someone_waits_for_a_lock(&db.url()).await;
    first.write(patient("p1", current.version + 1, None)).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), 2, "the second writer saw the first one's version");
    let read = db.store.read_current(&ctx(), ResourceType::Patient, "p1").await.unwrap().unwrap();
    assert_eq!(read.version, 3, "no update was lost");
    db.close().await;
}

#[tokio::test]
async fn creators_of_one_new_id_take_turns() {
    let Some(db) = Scratch::open().await else { return };
    let other_node = db.second_store().await;
    let mut first = db.store.begin_write(&ctx()).await.unwrap();
    assert!(first.read_current(ResourceType::Patient, "new").await.unwrap().is_none());
    let second = tokio::spawn(async move {
        let mut tx = other_node.begin_write(&ctx()).await.unwrap();
        let seen = tx.read_current(ResourceType::Patient, "new").await.unwrap();
        let version = seen.as_ref().map_or(1, |v| v.version + 1);
        tx.write(patient("new", version, None)).await.unwrap();
        tx.commit().await.unwrap();
        seen.map(|v| v.version)
    });
    until_someone_waits_for_a_lock(&db.url()).await;
    first.write(patient("new", 1, None)).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Some(1), "the second creator found the first one's resource");
    db.close().await;
}

#[tokio::test]
async fn conditional_creates_on_two_nodes_create_once() {
    let Some(db) = Scratch::open().await else { return };
    let other_node = db.second_store().await;
    let mut first = db.store.begin_write(&ctx()).await.unwrap();
    let found = first.find_matching_ids(ResourceType::Patient, &identifier_filter("X1"), 2).await.unwrap();
    assert!(found.is_empty());
    let second = tokio::spawn(async move {
        let mut tx = other_node.begin_write(&ctx()).await.unwrap();
        let found = tx.find_matching_ids(ResourceType::Patient, &identifier_filter("X1"), 2).await.unwrap();
        if found.is_empty() {
            tx.write(patient("second", 1, Some("X1"))).await.unwrap();
            tx.commit().await.unwrap();
        }
        found
    });
    until_someone_waits_for_a_lock(&db.url()).await;
    first.write(patient("first", 1, Some("X1"))).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), vec!["first".to_string()], "the second search saw the first create");
    db.close().await;
}

#[tokio::test]
async fn a_slot_is_booked_once_and_its_hold_is_read_under_its_lock() {
    let Some(db) = Scratch::open().await else { return };
    let slot = NewVersion {
        version: ResourceVersion {
            resource_type: ResourceType::Slot,
            id: "s1".into(),
            version: 1,
            last_updated: Timestamp::now(),
            body: Some(r#"{"resourceType":"Slot","id":"s1"}"#.into()),
        },
        change: ChangeKind::Create,
        index: IndexEntries::default(),
    };
    write_committed(&db.store, slot).await;
    let other_node = db.second_store().await;
    let mut first = db.store.begin_write(&ctx()).await.unwrap();
    assert_eq!(first.slot_booking("s1").await.unwrap(), None);
    let second = tokio::spawn(async move {
        let mut tx = other_node.begin_write(&ctx()).await.unwrap();
        // Blocks on the slot's row lock until the first booking commits, then sees it.
        let booked = tx.slot_booking("s1").await.unwrap();
        let hold = tx.hold("s1").await.unwrap();
        (booked, hold)
    });
    until_someone_waits_for_a_lock(&db.url()).await;
    first.put_slot_booking(SlotId("s1"), AppointmentId("a1"), None).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), (Some("a1".to_string()), None));

    // The primary key rejects a second booking even when nothing was read first.
    let mut tx = db.store.begin_write(&ctx()).await.unwrap();
    let err = tx.put_slot_booking(SlotId("s1"), AppointmentId("a2"), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    drop(tx);
    db.close().await;
}

#[tokio::test]
async fn a_deadlocked_unit_of_work_is_replayed_and_both_commit() {
    let Some(db) = Scratch::open().await else { return };
    write_committed(&db.store, patient("a", 1, None)).await;
    write_committed(&db.store, patient("b", 1, None)).await;
    let other_node = db.second_store().await;
    let mut first = db.store.begin_write(&ctx()).await.unwrap();
    let mut second = other_node.begin_write(&ctx()).await.unwrap();
    first.read_current(ResourceType::Patient, "a").await.unwrap();
    second.read_current(ResourceType::Patient, "b").await.unwrap();
    let first = tokio::spawn(async move {
        first.read_current(ResourceType::Patient, "b").await?;
        first.write(patient("b", 2, None)).await?;
        first.commit().await
    });
    until_someone_waits_for_a_lock(&db.url()).await;
    // Each now waits for the other: PostgreSQL aborts one, which is replayed.
    let second = async move {
        second.read_current(ResourceType::Patient, "a").await?;
        second.commit().await
    };
    let (first, second) = tokio::join!(first, second);
    first.unwrap().unwrap();
    second.unwrap();
    let b = db.store.read_current(&ctx(), ResourceType::Patient, "b").await.unwrap().unwrap();
    assert_eq!(b.version, 2);
    db.close().await;
}

#[tokio::test]
async fn a_replay_that_would_see_something_else_is_a_conflict() {
    let Some(db) = Scratch::open().await else { return };
    let mut tx = termin_store_sql::Steps(write::PostgresWriteTx::begin(db.store.pool.clone(), None).await.unwrap());
    let found = tx.find_matching_ids(ResourceType::Patient, &identifier_filter("X2"), 2).await.unwrap();
    assert!(found.is_empty());
    // A plain create does not wait for conditional writers, so it lands in between.
    write_committed(&db.store, patient("p", 1, Some("X2"))).await;
    let err = tx.0.resume(&mut 1, "a simulated abort".into()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    drop(tx);
    db.close().await;
}

#[tokio::test]
async fn outbox_events_are_numbered_in_commit_order() {
    let Some(db) = Scratch::open().await else { return };
    let event = |id: &str| DomainEvent {
        kind: "test".into(),
        resource_type: ResourceType::Slot,
        resource_id: id.into(),
        version: 1,
        occurred_at: Timestamp::now(),
        detail: "{}".into(),
    };
    let mut early = db.store.begin_write(&ctx()).await.unwrap();
    early.append_event(&event("early")).await.unwrap();
    let mut late = db.store.begin_write(&ctx()).await.unwrap();
    late.append_event(&event("late")).await.unwrap();
    late.commit().await.unwrap();
    early.commit().await.unwrap();
    let events = db.store.events(0, 10).await.unwrap();
    let order: Vec<&str> = events.iter().map(|(_, e)| e.resource_id.as_str()).collect();
    assert_eq!(order, ["late", "early"], "positions follow commits, not appends");
    db.close().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let Some(mut db) = Scratch::open().await else { return };
    db.store.ping().await.unwrap();
    let database = db.database.take().unwrap();
    database.drop_database().await.unwrap();
    let err = db.store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    db.close().await;
}

/// The audit3 migration moves the AuditEvents stored as resources to the audit trail's tables.
#[tokio::test]
async fn audit_events_stored_as_resources_move_to_their_own_tables() {
    let Some(db) = Scratch::open().await else { return };
    write_committed(&db.store, termin_store_sql::conformance::stored_audit_event()).await;
    // Back to the schema before the migration, with the event stored as a resource.
    for statement in
        ["DROP TABLE audit_event", "DROP TABLE audit_event_link", "DELETE FROM termin_schema_version WHERE version = 9"]
    {
        sqlx::query(statement).execute(&db.store.pool).await.unwrap();
    }
    let store = db.second_store().await;
    termin_store_sql::conformance::stored_audit_events_were_moved(&store).await;
    store.pool.close().await;
    db.close().await;
}
