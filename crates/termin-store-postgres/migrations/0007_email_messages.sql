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
-- Its index and the outbox cursor are shared with the other backend:
-- shared: mail_queue
