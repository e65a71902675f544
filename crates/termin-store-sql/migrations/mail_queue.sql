-- The e-mail queue's index and cursor, spelt alike in both dialects (BIGINT has INTEGER affinity
-- in SQLite); the mail_message table itself is each backend's own.
CREATE INDEX mail_message_by_due ON mail_message (state, next_attempt);

-- How far the outbox has been turned into messages, and the lease of the node doing it.
CREATE TABLE mail_cursor (
    id             BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    outbox_through BIGINT NOT NULL,
    lease_owner    TEXT,
    lease_until    BIGINT NOT NULL
);
