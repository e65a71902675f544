-- Subscription delivery: per Subscription how far the outbox has been matched, its numbered
-- events, how far its endpoint acknowledged them, and the lease of the node delivering it.
-- Instants in microseconds since the epoch.
CREATE TABLE subscription_delivery (
    sub_id            text COLLATE "C" NOT NULL PRIMARY KEY,
    matched_through   bigint NOT NULL,
    events_total      bigint NOT NULL,
    delivered_through bigint NOT NULL,
    failures          bigint NOT NULL,
    next_attempt      bigint NOT NULL,
    last_delivery     bigint,
    last_error        text,
    lease_owner       text,
    lease_until       bigint NOT NULL
);
CREATE INDEX subscription_delivery_by_due ON subscription_delivery (next_attempt);

CREATE TABLE subscription_event (
    sub_id        text COLLATE "C" NOT NULL,
    number        bigint NOT NULL,
    outbox_seq    bigint NOT NULL,
    focus_type    text NOT NULL,
    focus_id      text NOT NULL,
    focus_version bigint,
    occurred_at   bigint NOT NULL,
    PRIMARY KEY (sub_id, number)
);

-- Delivery finds new Subscriptions by their outbox events.
CREATE INDEX outbox_by_type ON outbox (res_type, seq);
