//! [`termin_store::NotificationStore`] on SQLite: the shared statements of
//! `termin_store_sql::notify` ([`termin_store_sql::notification_store!`]), listings on a reader,
//! changes on the writer connection, atomic changes in a `BEGIN IMMEDIATE` transaction.

use crate::limit::Limit;
use crate::{SqliteStore, db_error};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};
use termin_store::StoreResult;

termin_store_sql::notification_store!(SqliteStore, Sqlite, SqliteConnection);

impl SqliteStore {
    /// The writer connection, with a progress handler that stops nothing (an earlier unit of
    /// work's time limit must not interrupt delivery's statements).
    pub(crate) async fn delivery_writer(&self) -> StoreResult<PoolConnection<Sqlite>> {
        let mut conn = self.writer.acquire().await.map_err(db_error)?;
        Limit::install(&mut conn).await?;
        Ok(conn)
    }

    async fn begin_delivery(conn: &mut PoolConnection<Sqlite>) -> StoreResult<Transaction<'_, Sqlite>> {
        conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
    }
}
