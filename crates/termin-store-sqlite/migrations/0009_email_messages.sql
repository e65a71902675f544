-- E-mail to people: each message made from an outbox event (or a reminder), once per event and
-- recipient, rendered when it is queued; its state (queued, sent, failed), attempts and the
-- lease of the node sending it. Instants in microseconds since the epoch.
CREATE TABLE mail_message (
    event_key    TEXT    NOT NULL,
    recipient    TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    queued_at    INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    done_at      INTEGER,
    last_error   TEXT,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL,
    PRIMARY KEY (event_key, recipient)
) WITHOUT ROWID;
-- Its index and the outbox cursor are shared with the other backend:
-- shared: mail_queue
