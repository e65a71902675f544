-- Leases of cluster-wide jobs (the background slot generation): the node that holds a job's
-- lease runs it until lease_until (microseconds since the epoch), then another may take it.
CREATE TABLE job_lease (
    name        TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    lease_until INTEGER NOT NULL
) WITHOUT ROWID;
