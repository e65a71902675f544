//! [`NotificationStore`] and [`LeaseStore`] on SQLite: the shared statements of
//! `termin_store_sql::notify` and `::lease`, run on the writer connection (changes) or a
//! reader (listings).

use crate::limit::Limit;
use crate::{SqliteStore, db_error};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{Connection, Sqlite, SqliteConnection};
use termin_fhir::ResourceType;
use termin_store::{
    AttemptRecord, DeliveryState, DomainEvent, LeaseStore, NewNotification, Notification, NotificationStore, StoreResult,
};
use termin_store_sql::notify;

termin_store_sql::notify_executor!(Sqlite, SqliteConnection);

impl SqliteStore {
    /// The writer connection, with a progress handler that stops nothing (an earlier unit of
    /// work's time limit must not interrupt delivery's statements).
    async fn delivery_writer(&self) -> StoreResult<sqlx::pool::PoolConnection<Sqlite>> {
        let mut conn = self.writer.acquire().await.map_err(db_error)?;
        Limit::install(&mut conn).await?;
        Ok(conn)
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn events_of_type(&self, resource_type: ResourceType, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        notify::events_of_type(&mut Executor(&mut conn), resource_type, after, limit).await
    }

    async fn track(&self, subscription_id: &str, from: u64, now: Timestamp) -> StoreResult<()> {
        let mut conn = self.delivery_writer().await?;
        notify::track(&mut Executor(&mut conn), subscription_id, from, now).await
    }

    async fn untrack(&self, subscription_id: &str) -> StoreResult<()> {
        let mut conn = self.delivery_writer().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        notify::untrack(&mut Executor(&mut tx), subscription_id).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<String>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        notify::due(&mut Executor(&mut conn), now, limit).await
    }

    async fn claim(&self, subscription_id: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<DeliveryState>> {
        let mut conn = self.delivery_writer().await?;
        notify::claim(&mut Executor(&mut conn), subscription_id, owner, now, until).await
    }

    async fn append_notifications(
        &self,
        subscription_id: &str,
        owner: &str,
        matched_through: u64,
        events: &[NewNotification],
    ) -> StoreResult<Option<DeliveryState>> {
        let mut conn = self.delivery_writer().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
        let state = notify::append_notifications(&mut Executor(&mut tx), subscription_id, owner, matched_through, events).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(state)
    }

    async fn notifications(&self, subscription_id: &str, from: u64, until: u64, limit: usize) -> StoreResult<Vec<Notification>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        notify::notifications(&mut Executor(&mut conn), subscription_id, from, until, limit).await
    }

    async fn finish(&self, subscription_id: &str, owner: &str, attempt: &AttemptRecord) -> StoreResult<()> {
        let mut conn = self.delivery_writer().await?;
        notify::finish(&mut Executor(&mut conn), subscription_id, owner, attempt).await
    }

    async fn delivery_state(&self, subscription_id: &str) -> StoreResult<Option<DeliveryState>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        notify::delivery_state(&mut Executor(&mut conn), subscription_id).await
    }
}

/// On the writer connection: a claim waits for a write in progress, never for a lock of its own.
#[async_trait]
impl LeaseStore for SqliteStore {
    async fn claim_lease(&self, name: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        let mut conn = self.delivery_writer().await?;
        termin_store_sql::lease::claim_lease(&mut Executor(&mut conn), name, owner, now, until).await
    }
}
