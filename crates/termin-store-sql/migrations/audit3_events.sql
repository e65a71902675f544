-- The audit trail's tables, continued (spelt alike in both dialects): the links of the events
-- moved from the resource tables, taken from their reference index rows, then the index that
-- finds events by what they name, and the recorded index for date ranges and retention.
INSERT INTO audit_event_link (event_id, role, target_type, target_id)
SELECT DISTINCT x.res_id, CASE WHEN x.target_type = 'Patient' THEN 'P' ELSE 'E' END, x.target_type, x.target_id
FROM search_reference x
WHERE x.res_type = 'AuditEvent' AND x.param IN ('patient', 'entity') AND x.base IS NULL
  AND x.target_type IS NOT NULL AND x.target_id IS NOT NULL;
INSERT INTO audit_event_link (event_id, role, target_type, target_id)
SELECT DISTINCT x.res_id, 'A', x.target_type, x.target_id
FROM search_reference x
WHERE x.res_type = 'AuditEvent' AND x.param = 'agent'
  AND x.target_type IS NOT NULL AND x.target_id IS NOT NULL;
INSERT INTO audit_event_link (event_id, role, target_type, target_id)
SELECT DISTINCT x.res_id, 'A', '', x.identifier_value
FROM search_reference x
WHERE x.res_type = 'AuditEvent' AND x.param = 'agent' AND x.identifier_value IS NOT NULL;

CREATE INDEX audit_event_link_by_target ON audit_event_link (target_id, role, target_type, event_id);
CREATE INDEX audit_event_by_recorded ON audit_event (recorded_low);

DELETE FROM search_token WHERE res_type = 'AuditEvent';
DELETE FROM search_string WHERE res_type = 'AuditEvent';
DELETE FROM search_date WHERE res_type = 'AuditEvent';
DELETE FROM search_number WHERE res_type = 'AuditEvent';
DELETE FROM search_quantity WHERE res_type = 'AuditEvent';
DELETE FROM search_reference WHERE res_type = 'AuditEvent';
DELETE FROM search_uri WHERE res_type = 'AuditEvent';
DELETE FROM search_reference_date WHERE res_type = 'AuditEvent';
DELETE FROM search_position WHERE res_type = 'AuditEvent';
DELETE FROM resource_history WHERE res_type = 'AuditEvent';
DELETE FROM resource WHERE res_type = 'AuditEvent';
