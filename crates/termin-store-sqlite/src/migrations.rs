//! The SQLite schema: the `migrations/*.sql` files, applied in order at start-up inside one
//! write transaction (`BEGIN IMMEDIATE`, so another process opening the same file waits).

use crate::db_error;
use include_dir::{Dir, include_dir};
use sqlx::{Connection, Sqlite, SqliteConnection};
use termin_store::StoreResult;

/// The steps, one file each (`build.rs` rebuilds when they change). Never change what a
/// shipped step builds: add the next file.
static MIGRATION_FILES: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

pub async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    let steps = termin_store_sql::migration_steps(&MIGRATION_FILES)?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
    termin_store_sql::migrate::<Sqlite>(&mut tx, &steps).await?;
    tx.commit().await.map_err(db_error)
}
