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
