//! What only this backend promises (serialized units of work, a file that outlives the
//! process), and the store conformance kit every backend runs.

use super::*;
use crate::temporary::TemporaryStore;
use termin_fhir::ResourceType;
use termin_store::ResourceStore;
use termin_store_sql::conformance::{ctx, patient};

mod conformance {
    termin_store_sql::store_conformance!(crate::temporary::TemporaryStore);

    #[tokio::test]
    async fn mail_is_queued_once_and_sent_under_leases() {
        let temporary = crate::temporary::TemporaryStore::open().await.unwrap();
        let store = &*temporary.store;
        termin_store_sql::conformance::mail_is_queued_once_and_sent_under_leases(store, store).await;
    }
}

#[tokio::test]
async fn job_leases_have_one_owner_at_a_time() {
    let temporary = TemporaryStore::open().await.unwrap();
    termin_store_sql::lease::check_leases(&*temporary.store).await;
}

#[tokio::test]
async fn history_survives_reopen() {
    let temporary = TemporaryStore::open().await.unwrap();
    let mut tx = temporary.store.begin_write(&ctx()).await.unwrap();
    tx.write(patient("p1", 1, None)).await.unwrap();
    tx.commit().await.unwrap();
    let path = temporary.path();
    drop(temporary.store);
    let store = SqliteStore::open(&path, 1).await.unwrap();
    let request = HistoryRequest::of_type(ResourceType::Patient, Some("p1".into()), 10);
    assert_eq!(store.history(&ctx(), &request).await.unwrap().total, 1);
}

#[tokio::test]
async fn concurrent_units_of_work_are_serialized() {
    let temporary = TemporaryStore::open().await.unwrap();
    let store = temporary.store.clone();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin_write(&ctx()).await.unwrap();
            let next = tx.read_current(ResourceType::Patient, "counter").await.unwrap().map_or(1, |c| c.version + 1);
            tx.write(patient("counter", next, None)).await.unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let current = store.read_current(&ctx(), ResourceType::Patient, "counter").await.unwrap().unwrap();
    assert_eq!(current.version, 10);
}

/// The audit3 migration moves the AuditEvents stored as resources to the audit trail's tables.
#[tokio::test]
async fn audit_events_stored_as_resources_move_to_their_own_tables() {
    use sqlx::Connection;
    let temporary = TemporaryStore::open().await.unwrap();
    let mut tx = temporary.store.begin_write(&ctx()).await.unwrap();
    tx.write(termin_store_sql::conformance::stored_audit_event()).await.unwrap();
    tx.commit().await.unwrap();
    let path = temporary.path();
    // Back to the schema before the migration, with the event stored as a resource.
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    for statement in [
        "DROP TABLE audit_event",
        "DROP TABLE audit_event_link",
        "DELETE FROM termin_schema_version WHERE version = 11",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    drop(temporary.store);
    let store = SqliteStore::open(&path, 1).await.unwrap();
    termin_store_sql::conformance::stored_audit_events_were_moved(&store).await;
}
