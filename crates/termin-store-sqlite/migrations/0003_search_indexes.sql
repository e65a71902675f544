-- Search indexes for every R5 search parameter type. The rows are derived data: they are
-- rebuilt at start-up whenever search_index_state does not hold the fingerprint of the
-- running search-parameter set (e.g. right after this migration).
-- The indexes both dialects spell alike follow in termin-store-sql's migrations/search_indexes.sql.
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
-- Covering for the per-resource probes of plain token searches (code, system, validity).
CREATE INDEX search_token_by_resource ON search_token (res_type, res_id, param, code, system, valid_from, valid_until);

CREATE TABLE search_string (
    res_type   TEXT NOT NULL,
    res_id     TEXT NOT NULL,
    param      TEXT NOT NULL,
    value      TEXT NOT NULL,
    normalized TEXT NOT NULL
);

-- [low, high) in microseconds since the epoch; unbounded ends are the INTEGER extremes.
CREATE TABLE search_date (
    res_type TEXT    NOT NULL,
    res_id   TEXT    NOT NULL,
    param    TEXT    NOT NULL,
    low      INTEGER NOT NULL,
    high     INTEGER NOT NULL
);

CREATE TABLE search_number (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    low      REAL NOT NULL,
    high     REAL NOT NULL
);

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

CREATE TABLE search_uri (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    uri      TEXT NOT NULL
);

CREATE TABLE search_index_state (
    fingerprint TEXT NOT NULL
);

-- Shared with the other backend (termin-store-sql/migrations):
-- shared: search_indexes
