-- The audit trail in tables of its own (branch audit3): one compact row per AuditEvent with the
-- columns its searches need — recorded as the [low, high) microseconds its `date` covers,
-- action, outcome, code — and the AuditEvent as served (JSON text); one link row per patient
-- (role P), other resource (E) and agent (A) it names: target_type and id of a reference, or
-- target_type '' and the value of an agent's identifier. Events are only appended: ids are
-- time-ordered, so both tables grow at the end of their keys.
CREATE TABLE audit_event (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    recorded_low  bigint NOT NULL,
    recorded_high bigint NOT NULL,
    last_updated  text COLLATE "C" NOT NULL,
    action        text COLLATE "C" NOT NULL,
    outcome       text COLLATE "C" NOT NULL,
    code          text COLLATE "C" NOT NULL,
    body          text NOT NULL
);

CREATE TABLE audit_event_link (
    event_id    text COLLATE "C" NOT NULL,
    role        text COLLATE "C" NOT NULL,
    target_type text COLLATE "C" NOT NULL,
    target_id   text COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, role, target_type, target_id)
);

-- The AuditEvents stored so far as resources move here, with their recorded range from their
-- `date` index row; their links, the indexes and the removal of the resource rows follow in
-- the shared script.
INSERT INTO audit_event (id, recorded_low, recorded_high, last_updated, action, outcome, code, body)
SELECT r.res_id, coalesce(d.low, 0), coalesce(d.high, 0), r.last_updated,
       coalesce(r.body::jsonb ->> 'action', ''),
       coalesce(r.body::jsonb -> 'outcome' -> 'code' ->> 'code', ''),
       coalesce(r.body::jsonb -> 'code' -> 'coding' -> 0 ->> 'code', ''),
       r.body
FROM resource r
LEFT JOIN search_date d ON d.res_type = r.res_type AND d.res_id = r.res_id AND d.param = 'date'
WHERE r.res_type = 'AuditEvent' AND r.body IS NOT NULL;
-- shared: audit3_events
