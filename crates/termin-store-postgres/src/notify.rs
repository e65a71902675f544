//! [`termin_store::NotificationStore`] on PostgreSQL: the shared statements of
//! `termin_store_sql::notify` ([`termin_store_sql::notification_store!`]) on the pool; the lease
//! of `claim` is one conditional UPDATE, so of several nodes one wins.

use crate::{PostgresStore, db_error};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use termin_store::StoreResult;

termin_store_sql::notification_store!(PostgresStore, Postgres, PgConnection);

impl PostgresStore {
    async fn delivery_writer(&self) -> StoreResult<PoolConnection<Postgres>> {
        self.reader().await
    }

    async fn begin_delivery(conn: &mut PoolConnection<Postgres>) -> StoreResult<Transaction<'_, Postgres>> {
        conn.begin().await.map_err(db_error)
    }
}
