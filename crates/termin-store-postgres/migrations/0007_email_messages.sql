-- E-mail to people: each message made from an outbox event (or a reminder), once per event and
-- recipient, rendered when it is queued; its state (queued, sent, failed), attempts and the
-- lease of the node sending it. Instants in microseconds since the epoch.
CREATE TABLE mail_message (
    event_key    text COLLATE "C" NOT NULL,
    recipient    text COLLATE "C" NOT NULL,
    message      text   NOT NULL,
    state        text   NOT NULL,
    attempts     bigint NOT NULL,
    queued_at    bigint NOT NULL,
    next_attempt bigint NOT NULL,
    done_at      bigint,
    last_error   text,
    lease_owner  text,
    lease_until  bigint NOT NULL,
    PRIMARY KEY (event_key, recipient)
);
CREATE INDEX mail_message_by_due ON mail_message (state, next_attempt);

-- How far the outbox has been turned into messages, and the lease of the node doing it.
CREATE TABLE mail_cursor (
    id             bigint NOT NULL PRIMARY KEY CHECK (id = 1),
    outbox_through bigint NOT NULL,
    lease_owner    text,
    lease_until    bigint NOT NULL
);
