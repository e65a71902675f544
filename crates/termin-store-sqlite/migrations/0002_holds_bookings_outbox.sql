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
