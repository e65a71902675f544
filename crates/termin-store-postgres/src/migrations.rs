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
use include_dir::{Dir, include_dir};
use sqlx::{PgPool, Postgres};
use termin_store::StoreResult;

/// The steps, one file each (`build.rs` rebuilds when they change). Never change what a
/// shipped step builds: add the next file.
static MIGRATION_FILES: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

pub async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let steps = termin_store_sql::migration_steps(&MIGRATION_FILES)?;
    let mut tx = pool.begin().await.map_err(db_error)?;
    AdvisoryLock::Migration.acquire(&mut tx).await.map_err(db_error)?;
    termin_store_sql::migrate::<Postgres>(&mut tx, &steps).await?;
    tx.commit().await.map_err(db_error)
}
