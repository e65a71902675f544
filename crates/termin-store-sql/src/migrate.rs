//! The schema migration runner both backends use. Each backend keeps its migrations as
//! `.sql` files of its own dialect (`migrations/NNNN_name.sql`, the directory embedded at
//! build time and read by [`steps`]: the files are the only list of steps); DDL both dialects
//! spell alike is kept once, in this crate's `migrations/` ([`shared`]), and named by a
//! `-- shared: NAME` line in the backends' files that need it. The versions applied are recorded in
//! `termin_schema_version`, one row per version (no checksum: a step's scripts may be
//! rearranged as long as together they build the same schema).

use crate::{Dialect, PushValue, SqlResult};
use include_dir::Dir;
use termin_store::StoreError;

/// One step of a backend's schema. Never change what a shipped step builds: add a new one.
pub struct Migration {
    pub version: i64,
    /// Statements of the backend's dialect, run as one script.
    pub sql: &'static str,
    /// Scripts of [`shared`] run after `sql`, in order, as part of the same step.
    pub shared: Vec<&'static str>,
}

/// The line of a backend's migration file that adds a [`shared`] script to its step.
const SHARED_DIRECTIVE: &str = "-- shared: ";

/// A backend's steps from its embedded `migrations/` directory: file `NNNN_name.sql` is step
/// `NNNN`, plus the shared scripts its `-- shared: NAME` lines name, in that order. Versions
/// must run 1, 2, 3, … without gaps, so a step cannot be skipped or numbered twice.
pub fn steps(dir: &'static Dir<'static>) -> Result<Vec<Migration>, StoreError> {
    let malformed = |what: String| StoreError::Database(format!("schema migrations: {what}"));
    let mut steps = Vec::new();
    for file in dir.files() {
        let name = file.path().display().to_string();
        let Some(stem) = name.strip_suffix(".sql") else { continue };
        let version = stem
            .split_once('_')
            .and_then(|(number, _)| number.parse::<i64>().ok())
            .ok_or_else(|| malformed(format!("{name} is not named NNNN_name.sql")))?;
        let sql = file.contents_utf8().ok_or_else(|| malformed(format!("{name} is not UTF-8")))?;
        let shared = sql
            .lines()
            .filter_map(|line| line.strip_prefix(SHARED_DIRECTIVE))
            .map(|wanted| {
                shared::named(wanted.trim()).ok_or_else(|| malformed(format!("{name}: no shared script {wanted:?}")))
            })
            .collect::<Result<_, _>>()?;
        steps.push(Migration { version, sql, shared });
    }
    steps.sort_by_key(|step| step.version);
    if let Some((expected, step)) = steps.iter().enumerate().find(|(i, step)| step.version != *i as i64 + 1) {
        return Err(malformed(format!("step {} found where step {} belongs", step.version, expected + 1)));
    }
    Ok(steps)
}

/// The DDL both dialects spell alike, one copy for both backends.
pub mod shared {
    /// The indexes of `resource_history`.
    pub const HISTORY_INDEXES: &str = include_str!("../migrations/history_indexes.sql");
    /// The indexes of the search tables but `search_token_by_resource` (which differs).
    pub const SEARCH_INDEXES: &str = include_str!("../migrations/search_indexes.sql");
    /// The indexes of `search_reference_date` and its first fill from the other index rows.
    pub const SEARCH_REFERENCE_DATE: &str = include_str!("../migrations/search_reference_date.sql");
    /// The e-mail queue's index and its outbox cursor.
    pub const MAIL_QUEUE: &str = include_str!("../migrations/mail_queue.sql");
    /// The audit trail's own tables, continued: the moved events' links, their indexes, and
    /// the removal of the AuditEvents stored as resources.
    pub const AUDIT3_EVENTS: &str = include_str!("../migrations/audit3_events.sql");

    /// The script a `-- shared: NAME` line names (its file name without `.sql`).
    pub fn named(name: &str) -> Option<&'static str> {
        match name {
            "history_indexes" => Some(HISTORY_INDEXES),
            "search_indexes" => Some(SEARCH_INDEXES),
            "search_reference_date" => Some(SEARCH_REFERENCE_DATE),
            "mail_queue" => Some(MAIL_QUEUE),
            "audit3_events" => Some(AUDIT3_EVENTS),
            _ => None,
        }
    }
}

/// Applies the migrations newer than the database's schema, in order, on `conn` — a
/// transaction the backend began and holds whatever lock keeps other migrators out. A
/// database newer than `migrations` is refused.
pub async fn migrate<D: Dialect>(conn: &mut D::Connection, migrations: &[Migration]) -> SqlResult<(), D> {
    let create = format!("CREATE TABLE IF NOT EXISTS termin_schema_version (version {} NOT NULL)", D::VERSION_COLUMN);
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
        for script in std::iter::once(migration.sql).chain(migration.shared.iter().copied()) {
            D::execute_script(conn, script).await?;
        }
        let mut record = D::builder("INSERT INTO termin_schema_version (version) VALUES (");
        record.push_value(migration.version).push(")");
        D::execute(conn, record).await?;
        tracing::info!(version = migration.version, "applied schema migration");
    }
    Ok(())
}
