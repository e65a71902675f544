-- Leases of cluster-wide jobs (the background slot generation): the node that holds a job's
-- lease runs it until lease_until (microseconds since the epoch), then another may take it.
CREATE TABLE job_lease (
    name        text COLLATE "C" NOT NULL PRIMARY KEY,
    owner       text NOT NULL,
    lease_until bigint NOT NULL
);
