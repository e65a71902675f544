//! [`termin_store::NotificationStore`] on SQLite: the shared statements of
//! `termin_store_sql::notify` ([`termin_store_sql::notification_store!`]), listings on a reader,
//! changes on the sqlx writer connection in this process's write turn, atomic changes in a
//! `BEGIN IMMEDIATE` transaction.

use crate::{SqliteStore, db_error};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};
use std::ops::{Deref, DerefMut};
use termin_store::StoreResult;
use tokio::sync::OwnedMutexGuard;

termin_store_sql::notification_store!(SqliteStore, Sqlite, SqliteConnection);

/// The connection of delivery's changes, held in this process's write turn (see `group`), so
/// that a change never waits at SQLite's lock for a group of units of work.
pub(crate) struct DeliveryWriter {
    conn: PoolConnection<Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl Deref for DeliveryWriter {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for DeliveryWriter {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl SqliteStore {
    pub(crate) async fn delivery_writer(&self) -> StoreResult<DeliveryWriter> {
        let turn = self.turn.take().await;
        let conn = self.writer.acquire().await.map_err(db_error)?;
        Ok(DeliveryWriter { conn, _turn: turn })
    }

    async fn begin_delivery(conn: &mut DeliveryWriter) -> StoreResult<Transaction<'_, Sqlite>> {
        (**conn).begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
    }
}
