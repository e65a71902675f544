//! Versioned schema migrations, applied in order at start-up inside one write transaction.

use sqlx::{Connection, SqliteConnection};
use termin_store::{StoreError, StoreResult};

use crate::db_error;

/// Each entry is applied once, in order; never edit an entry that has shipped.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
    r#"
CREATE TABLE resource (
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated TEXT    NOT NULL,
    body         TEXT,
    PRIMARY KEY (res_type, res_id)
) WITHOUT ROWID;

CREATE TABLE resource_history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated TEXT    NOT NULL,
    change       TEXT    NOT NULL,
    body         TEXT,
    UNIQUE (res_type, res_id, version)
);
CREATE INDEX resource_history_by_type ON resource_history (res_type, seq);
CREATE INDEX resource_history_by_resource ON resource_history (res_type, res_id, seq);

CREATE TABLE search_token (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT,
    code     TEXT NOT NULL
);
CREATE INDEX search_token_by_code ON search_token (res_type, param, code, system);
CREATE INDEX search_token_by_resource ON search_token (res_type, res_id);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE slot_hold (
    slot_id    TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    token      TEXT NOT NULL,
    held_until TEXT NOT NULL
);
CREATE INDEX slot_hold_by_expiry ON slot_hold (held_until);

-- One row per slot occupied by an active Appointment: the primary key makes two active
-- bookings of one slot impossible in the database itself.
CREATE TABLE slot_booking (
    slot_id        TEXT NOT NULL PRIMARY KEY,
    appointment_id TEXT NOT NULL
);

CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    res_type      TEXT    NOT NULL,
    res_id        TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    occurred_at   TEXT    NOT NULL,
    detail        TEXT    NOT NULL
);
"#,
    ),
];

pub async fn migrate(conn: &mut SqliteConnection) -> StoreResult<()> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS termin_schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM termin_schema_version")
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    let current = current.unwrap_or(0);
    let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
    if current > newest {
        return Err(StoreError::Database(format!(
            "the database schema is version {current}, newer than this Termin build knows ({newest}); upgrade Termin"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db_error)?;
        sqlx::query("INSERT INTO termin_schema_version (version) VALUES (?)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tracing::info!(version, "applied schema migration");
    }
    tx.commit().await.map_err(db_error)
}
