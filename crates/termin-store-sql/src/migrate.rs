//! The schema migration runner both backends use. Each backend keeps its migrations as
//! `.sql` files of its own dialect (`migrations/NNNN_name.sql`, embedded at build time); the
//! versions applied are recorded in `termin_schema_version`, one row per version.

use crate::{Dialect, PushValue, SqlResult};
use termin_store::StoreError;

/// One step of a backend's schema. Never edit a step that has shipped: add a new one.
pub struct Migration {
    pub version: i64,
    /// Statements of the backend's dialect, run as one script.
    pub sql: &'static str,
}

/// Applies the migrations newer than the database's schema, in order, on `conn` — a
/// transaction the backend began and holds whatever lock keeps other migrators out. A
/// database newer than `migrations` is refused.
pub async fn migrate<D: Dialect>(conn: &mut D::Connection, migrations: &[Migration]) -> SqlResult<(), D> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS termin_schema_version (version {} NOT NULL)",
        D::VERSION_COLUMN
    );
    D::execute(conn, D::builder(create)).await?;
    let row = D::fetch_optional(conn, D::builder("SELECT max(version) FROM termin_schema_version")).await?;
    let current = match row {
        Some(row) => D::optional_integer(&row, 0.into())?.unwrap_or(0),
        None => 0,
    };
    let newest = migrations.last().map_or(0, |m| m.version);
    if current > newest {
        return Err(StoreError::Database(format!(
            "the database schema is version {current}, newer than this Termin build knows ({newest}); upgrade Termin"
        ))
        .into());
    }
    for migration in migrations.iter().filter(|m| m.version > current) {
        D::execute_script(conn, migration.sql).await?;
        let mut record = D::builder("INSERT INTO termin_schema_version (version) VALUES (");
        record.push_value(migration.version).push(")");
        D::execute(conn, record).await?;
        tracing::info!(version = migration.version, "applied schema migration");
    }
    Ok(())
}
