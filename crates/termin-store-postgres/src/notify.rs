//! [`NotificationStore`] and [`LeaseStore`] on PostgreSQL: the shared statements of
//! `termin_store_sql::notify` and `::lease` on the pool; the lease of `claim` (and of a job) is
//! one conditional UPDATE, so of several nodes one wins.

use crate::{PostgresStore, db_error};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{PgConnection, Postgres};
use termin_fhir::ResourceType;
use termin_store::{
    AttemptRecord, DeliveryState, DomainEvent, LeaseStore, NewNotification, Notification, NotificationStore, StoreResult,
};
use termin_store_sql::notify;

termin_store_sql::notify_executor!(Postgres, PgConnection);

#[async_trait]
impl NotificationStore for PostgresStore {
    async fn events_of_type(&self, resource_type: ResourceType, after: u64, limit: usize) -> StoreResult<Vec<(u64, DomainEvent)>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::events_of_type(&mut Executor(&mut conn), resource_type, after, limit).await
    }

    async fn track(&self, subscription_id: &str, from: u64, now: Timestamp) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::track(&mut Executor(&mut conn), subscription_id, from, now).await
    }

    async fn untrack(&self, subscription_id: &str) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_error)?;
        notify::untrack(&mut Executor(&mut tx), subscription_id).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn due(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<String>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::due(&mut Executor(&mut conn), now, limit).await
    }

    async fn claim(&self, subscription_id: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<DeliveryState>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::claim(&mut Executor(&mut conn), subscription_id, owner, now, until).await
    }

    async fn append_notifications(
        &self,
        subscription_id: &str,
        owner: &str,
        matched_through: u64,
        events: &[NewNotification],
    ) -> StoreResult<Option<DeliveryState>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_error)?;
        let state = notify::append_notifications(&mut Executor(&mut tx), subscription_id, owner, matched_through, events).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(state)
    }

    async fn notifications(&self, subscription_id: &str, from: u64, until: u64, limit: usize) -> StoreResult<Vec<Notification>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::notifications(&mut Executor(&mut conn), subscription_id, from, until, limit).await
    }

    async fn finish(&self, subscription_id: &str, owner: &str, attempt: &AttemptRecord) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::finish(&mut Executor(&mut conn), subscription_id, owner, attempt).await
    }

    async fn delivery_state(&self, subscription_id: &str) -> StoreResult<Option<DeliveryState>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        notify::delivery_state(&mut Executor(&mut conn), subscription_id).await
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    async fn claim_lease(&self, name: &str, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        termin_store_sql::lease::claim_lease(&mut Executor(&mut conn), name, owner, now, until).await
    }
}
