//! The SQLite schema: the `migrations/*.sql` files, applied in order at start-up inside one
//! write transaction (`BEGIN IMMEDIATE`, so another process opening the same file waits).

use crate::db_error;
use sqlx::{Connection, Sqlite, SqliteConnection};
use termin_store::StoreResult;
use termin_store_sql::{Migration, shared_ddl};

/// Never change what a shipped step builds: add the next one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/0001_resources.sql"), shared: &[shared_ddl::HISTORY_INDEXES] },
    Migration { version: 2, sql: include_str!("../migrations/0002_holds_bookings_outbox.sql"), shared: &[] },
    Migration { version: 3, sql: include_str!("../migrations/0003_search_indexes.sql"), shared: &[shared_ddl::SEARCH_INDEXES] },
    Migration { version: 4, sql: include_str!("../migrations/0004_booking_cancel_deadline.sql"), shared: &[] },
    Migration { version: 5, sql: include_str!("../migrations/0005_hold_placed_at.sql"), shared: &[] },
    Migration { version: 6, sql: include_str!("../migrations/0006_search_reference_date.sql"), shared: &[shared_ddl::SEARCH_REFERENCE_DATE] },
    Migration { version: 7, sql: include_str!("../migrations/0007_subscription_delivery.sql"), shared: &[] },
    Migration { version: 8, sql: include_str!("../migrations/0008_near_search_position.sql"), shared: &[] },
    Migration { version: 9, sql: include_str!("../migrations/0009_email_messages.sql"), shared: &[] },
    Migration { version: 10, sql: include_str!("../migrations/0010_job_lease.sql"), shared: &[] },
];

pub async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
    termin_store_sql::migrate::<Sqlite>(&mut tx, MIGRATIONS).await?;
    tx.commit().await.map_err(db_error)
}
