-- The indexes and the first fill of search_reference_date, alike in both dialects; run after
-- the backend's CREATE TABLE (PostgreSQL's version 4, SQLite's version 6).
-- Covering, so the scan never visits the table.
CREATE INDEX search_reference_date_by_target
    ON search_reference_date (res_type, param, target_id, target_type, date_param, low, res_id, high, base, version);
CREATE INDEX search_reference_date_by_resource ON search_reference_date (res_type, res_id);

INSERT INTO search_reference_date
    (res_type, res_id, param, target_type, target_id, version, base, date_param, low, high)
SELECT x.res_type, x.res_id, x.param, x.target_type, x.target_id, x.version, x.base, d.param, d.low, d.high
FROM search_reference x
JOIN search_date d ON d.res_type = x.res_type AND d.res_id = x.res_id
WHERE x.target_type IS NOT NULL AND x.target_id IS NOT NULL
  AND ((x.res_type = 'Slot' AND x.param = 'schedule' AND d.param = 'start')
    OR (x.res_type = 'Appointment' AND x.param = 'actor' AND d.param = 'date'));
