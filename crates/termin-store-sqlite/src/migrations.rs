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
    (
        3,
        r#"
-- Search indexes for every R5 search parameter type. The rows are derived data: they are
-- rebuilt at start-up whenever search_index_state does not hold the fingerprint of the
-- running search-parameter set (e.g. right after this migration).
DROP TABLE search_token;

CREATE TABLE search_token (
    res_type    TEXT NOT NULL,
    res_id      TEXT NOT NULL,
    param       TEXT NOT NULL,
    system      TEXT,
    code        TEXT,
    text        TEXT,
    type_system TEXT,
    type_code   TEXT,
    -- Validity window in microseconds since the epoch (NULL: unbounded), for rows that hold
    -- only for a time (the status of a Slot whose hold expires).
    valid_from  INTEGER,
    valid_until INTEGER
);
CREATE INDEX search_token_by_code ON search_token (res_type, param, code, system, res_id);
CREATE INDEX search_token_by_text ON search_token (res_type, param, text) WHERE text IS NOT NULL;
-- Covering for the per-resource probes of plain token searches (code, system, validity).
CREATE INDEX search_token_by_resource ON search_token (res_type, res_id, param, code, system, valid_from, valid_until);

CREATE TABLE search_string (
    res_type   TEXT NOT NULL,
    res_id     TEXT NOT NULL,
    param      TEXT NOT NULL,
    value      TEXT NOT NULL,
    normalized TEXT NOT NULL
);
CREATE INDEX search_string_by_value ON search_string (res_type, param, normalized, res_id);
CREATE INDEX search_string_by_resource ON search_string (res_type, res_id, param);

-- [low, high) in microseconds since the epoch; unbounded ends are the INTEGER extremes.
CREATE TABLE search_date (
    res_type TEXT    NOT NULL,
    res_id   TEXT    NOT NULL,
    param    TEXT    NOT NULL,
    low      INTEGER NOT NULL,
    high     INTEGER NOT NULL
);
CREATE INDEX search_date_by_low ON search_date (res_type, param, low, high, res_id);
CREATE INDEX search_date_by_high ON search_date (res_type, param, high, low, res_id);
CREATE INDEX search_date_by_resource ON search_date (res_type, res_id, param, low, high);

CREATE TABLE search_number (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    low      REAL NOT NULL,
    high     REAL NOT NULL
);
CREATE INDEX search_number_by_value ON search_number (res_type, param, low, res_id);
CREATE INDEX search_number_by_resource ON search_number (res_type, res_id, param);

CREATE TABLE search_quantity (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    low      REAL NOT NULL,
    high     REAL NOT NULL,
    system   TEXT,
    code     TEXT,
    unit     TEXT
);
CREATE INDEX search_quantity_by_value ON search_quantity (res_type, param, low, res_id);
CREATE INDEX search_quantity_by_resource ON search_quantity (res_type, res_id, param);

CREATE TABLE search_reference (
    res_type          TEXT NOT NULL,
    res_id            TEXT NOT NULL,
    param             TEXT NOT NULL,
    target_type       TEXT,
    target_id         TEXT,
    version           TEXT,
    base              TEXT,
    url               TEXT,
    identifier_system TEXT,
    identifier_value  TEXT
);
CREATE INDEX search_reference_by_target ON search_reference (res_type, param, target_id, target_type, res_id);
CREATE INDEX search_reference_to_target ON search_reference (target_type, target_id, res_type, param, res_id);
CREATE INDEX search_reference_by_url ON search_reference (res_type, param, url, res_id) WHERE url IS NOT NULL;
CREATE INDEX search_reference_by_identifier ON search_reference (res_type, param, identifier_value, identifier_system, res_id)
    WHERE identifier_value IS NOT NULL;
CREATE INDEX search_reference_by_resource ON search_reference (res_type, res_id, param);

CREATE TABLE search_uri (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    uri      TEXT NOT NULL
);
CREATE INDEX search_uri_by_value ON search_uri (res_type, param, uri, res_id);
CREATE INDEX search_uri_by_resource ON search_uri (res_type, res_id, param);

CREATE TABLE search_index_state (
    fingerprint TEXT NOT NULL
);
"#,
    ),
    (
        4,
        r#"
-- The cancellation deadline (an instant) the policy set when the slot was booked; NULL when
-- no policy applied. Later policy changes cannot loosen it.
ALTER TABLE slot_booking ADD COLUMN cancel_deadline TEXT;
"#,
    ),
    (
        5,
        r#"
-- When a hold was first placed (renewals keep it), and the holder's live holds by holder.
ALTER TABLE slot_hold ADD COLUMN placed_at TEXT NOT NULL DEFAULT '';
UPDATE slot_hold SET placed_at = held_until;
CREATE INDEX slot_hold_by_holder ON slot_hold (holder, held_until);
"#,
    ),
    (
        6,
        r#"
-- Subscription delivery: per Subscription how far the outbox has been matched, its numbered
-- events, how far its endpoint acknowledged them, and the lease of the node delivering it.
-- Instants in microseconds since the epoch.
CREATE TABLE subscription_delivery (
    sub_id            TEXT    NOT NULL PRIMARY KEY,
    matched_through   INTEGER NOT NULL,
    events_total      INTEGER NOT NULL,
    delivered_through INTEGER NOT NULL,
    failures          INTEGER NOT NULL,
    next_attempt      INTEGER NOT NULL,
    last_delivery     INTEGER,
    last_error        TEXT,
    lease_owner       TEXT,
    lease_until       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX subscription_delivery_by_due ON subscription_delivery (next_attempt);

CREATE TABLE subscription_event (
    sub_id        TEXT    NOT NULL,
    number        INTEGER NOT NULL,
    outbox_seq    INTEGER NOT NULL,
    focus_type    TEXT    NOT NULL,
    focus_id      TEXT    NOT NULL,
    focus_version INTEGER,
    occurred_at   INTEGER NOT NULL,
    PRIMARY KEY (sub_id, number)
) WITHOUT ROWID;

-- Delivery finds new Subscriptions by their outbox events.
CREATE INDEX outbox_by_type ON outbox (res_type, seq);
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
