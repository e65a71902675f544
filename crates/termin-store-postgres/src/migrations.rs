//! The PostgreSQL schema: the `migrations/*.sql` files, applied in order at start-up in one
//! transaction. Nodes that start together take turns on an advisory lock: the first applies
//! what is missing, the others find it applied. PostgreSQL's DDL is transactional, so a
//! failed step leaves nothing.
//!
//! The schema mirrors the SQLite backend's, with two deliberate differences: every text column
//! a query compares or orders is `COLLATE "C"` (byte order, as SQLite compares, whatever the
//! database's locale), and `search_index_state` holds at most one row.

use crate::db_error;
use crate::locks::AdvisoryLock;
use sqlx::{PgPool, Postgres};
use termin_store::StoreResult;
use termin_store_sql::{Migration, shared_ddl};

/// Never change what a shipped step builds: add the next one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, sql: include_str!("../migrations/0001_schema.sql"), shared: &[shared_ddl::HISTORY_INDEXES, shared_ddl::SEARCH_INDEXES] },
    Migration { version: 2, sql: include_str!("../migrations/0002_booking_cancel_deadline.sql"), shared: &[] },
    Migration { version: 3, sql: include_str!("../migrations/0003_hold_placed_at.sql"), shared: &[] },
    Migration { version: 4, sql: include_str!("../migrations/0004_search_reference_date.sql"), shared: &[shared_ddl::SEARCH_REFERENCE_DATE] },
    Migration { version: 5, sql: include_str!("../migrations/0005_subscription_delivery.sql"), shared: &[] },
    Migration { version: 6, sql: include_str!("../migrations/0006_near_search_position.sql"), shared: &[] },
    Migration { version: 7, sql: include_str!("../migrations/0007_email_messages.sql"), shared: &[] },
    Migration { version: 8, sql: include_str!("../migrations/0008_job_lease.sql"), shared: &[] },
];

pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    AdvisoryLock::Migration.acquire(&mut tx).await.map_err(db_error)?;
    termin_store_sql::migrate::<Postgres>(&mut tx, MIGRATIONS).await?;
    tx.commit().await.map_err(db_error)
}
