//! [`MailStore`] on PostgreSQL: the shared statements of `termin_store_sql::mail` on the pool;
//! each lease is one conditional UPDATE, so of several nodes one wins.

use crate::{PostgresStore, db_error};
use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::{PgConnection, Postgres};
use termin_store::{ClaimedMail, MailOutcome, MailStore, OutgoingMail, StoreResult};
use termin_store_sql::mail;

termin_store_sql::notify_executor!(Postgres, PgConnection);

#[async_trait]
impl MailStore for PostgresStore {
    async fn claim_mail_cursor(&self, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<u64>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        mail::claim_mail_cursor(&mut Executor(&mut conn), owner, now, until).await
    }

    async fn queue_mail(&self, owner: &str, through: Option<u64>, mails: &[OutgoingMail], now: Timestamp) -> StoreResult<bool> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db_error)?;
        let queued = mail::queue_mail(&mut Executor(&mut tx), owner, through, mails, now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(queued)
    }

    async fn known_mail_events(&self, event_keys: &[String]) -> StoreResult<Vec<String>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        mail::known_mail_events(&mut Executor(&mut conn), event_keys).await
    }

    async fn claim_mail(&self, owner: &str, now: Timestamp, until: Timestamp) -> StoreResult<Option<ClaimedMail>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        mail::claim_mail(&mut Executor(&mut conn), owner, now, until).await
    }

    async fn record_mail(
        &self,
        event_key: &str,
        recipient: &str,
        owner: &str,
        outcome: &MailOutcome,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        mail::record_mail(&mut Executor(&mut conn), event_key, recipient, owner, outcome, now).await
    }
}
