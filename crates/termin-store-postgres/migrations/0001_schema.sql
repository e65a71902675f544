CREATE TABLE resource (
    res_type     text COLLATE "C" NOT NULL,
    res_id       text COLLATE "C" NOT NULL,
    version      bigint NOT NULL,
    last_updated text COLLATE "C" NOT NULL,
    body         text,
    PRIMARY KEY (res_type, res_id)
);

CREATE TABLE resource_history (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    res_type     text COLLATE "C" NOT NULL,
    res_id       text COLLATE "C" NOT NULL,
    version      bigint NOT NULL,
    last_updated text COLLATE "C" NOT NULL,
    change       text NOT NULL,
    body         text,
    UNIQUE (res_type, res_id, version)
);
-- Its indexes follow in termin-store-sql's migrations/history_indexes.sql.

CREATE TABLE slot_hold (
    slot_id    text COLLATE "C" NOT NULL PRIMARY KEY,
    holder     text NOT NULL,
    token      text NOT NULL,
    held_until text COLLATE "C" NOT NULL
);
CREATE INDEX slot_hold_by_expiry ON slot_hold (held_until);

-- One row per slot occupied by an active Appointment: the primary key makes two active
-- bookings of one slot impossible in the database itself, whichever node writes.
CREATE TABLE slot_booking (
    slot_id        text COLLATE "C" NOT NULL PRIMARY KEY,
    appointment_id text NOT NULL
);

CREATE TABLE outbox (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL,
    res_type    text NOT NULL,
    res_id      text NOT NULL,
    version     bigint NOT NULL,
    occurred_at text NOT NULL,
    detail      text NOT NULL
);

-- Search indexes: derived data, rebuilt at start-up whenever search_index_state does not hold
-- the fingerprint of the running search-parameter set.
-- The indexes both dialects spell alike follow in termin-store-sql's migrations/search_indexes.sql.
CREATE TABLE search_token (
    res_type    text COLLATE "C" NOT NULL,
    res_id      text COLLATE "C" NOT NULL,
    param       text COLLATE "C" NOT NULL,
    system      text COLLATE "C",
    code        text COLLATE "C",
    text        text COLLATE "C",
    type_system text COLLATE "C",
    type_code   text COLLATE "C",
    -- Validity window in microseconds since the epoch (NULL: unbounded), for rows that hold
    -- only for a time (the status of a Slot whose hold expires).
    valid_from  bigint,
    valid_until bigint
);
CREATE INDEX search_token_by_resource ON search_token (res_type, res_id, param);

CREATE TABLE search_string (
    res_type   text COLLATE "C" NOT NULL,
    res_id     text COLLATE "C" NOT NULL,
    param      text COLLATE "C" NOT NULL,
    value      text COLLATE "C" NOT NULL,
    normalized text COLLATE "C" NOT NULL
);

-- [low, high) in microseconds since the epoch; unbounded ends are the bigint extremes.
CREATE TABLE search_date (
    res_type text COLLATE "C" NOT NULL,
    res_id   text COLLATE "C" NOT NULL,
    param    text COLLATE "C" NOT NULL,
    low      bigint NOT NULL,
    high     bigint NOT NULL
);

CREATE TABLE search_number (
    res_type text COLLATE "C" NOT NULL,
    res_id   text COLLATE "C" NOT NULL,
    param    text COLLATE "C" NOT NULL,
    low      double precision NOT NULL,
    high     double precision NOT NULL
);

CREATE TABLE search_quantity (
    res_type text COLLATE "C" NOT NULL,
    res_id   text COLLATE "C" NOT NULL,
    param    text COLLATE "C" NOT NULL,
    low      double precision NOT NULL,
    high     double precision NOT NULL,
    system   text COLLATE "C",
    code     text COLLATE "C",
    unit     text COLLATE "C"
);

CREATE TABLE search_reference (
    res_type          text COLLATE "C" NOT NULL,
    res_id            text COLLATE "C" NOT NULL,
    param             text COLLATE "C" NOT NULL,
    target_type       text COLLATE "C",
    target_id         text COLLATE "C",
    version           text COLLATE "C",
    base              text COLLATE "C",
    url               text COLLATE "C",
    identifier_system text COLLATE "C",
    identifier_value  text COLLATE "C"
);

CREATE TABLE search_uri (
    res_type text COLLATE "C" NOT NULL,
    res_id   text COLLATE "C" NOT NULL,
    param    text COLLATE "C" NOT NULL,
    uri      text COLLATE "C" NOT NULL
);

CREATE TABLE search_index_state (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint text NOT NULL
);

-- Shared with the other backend (termin-store-sql/migrations):
-- shared: history_indexes
-- shared: search_indexes
