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
