-- The indexes of the search tables that both dialects spell alike, run after the backend's own
-- CREATE TABLE statements (PostgreSQL's version 1, SQLite's version 3). The one index that
-- differs, search_token_by_resource, stays with the backend.
CREATE INDEX search_token_by_code ON search_token (res_type, param, code, system, res_id);
CREATE INDEX search_token_by_text ON search_token (res_type, param, text) WHERE text IS NOT NULL;
CREATE INDEX search_string_by_value ON search_string (res_type, param, normalized, res_id);
CREATE INDEX search_string_by_resource ON search_string (res_type, res_id, param);
CREATE INDEX search_date_by_low ON search_date (res_type, param, low, high, res_id);
CREATE INDEX search_date_by_high ON search_date (res_type, param, high, low, res_id);
CREATE INDEX search_date_by_resource ON search_date (res_type, res_id, param, low, high);
CREATE INDEX search_number_by_value ON search_number (res_type, param, low, res_id);
CREATE INDEX search_number_by_resource ON search_number (res_type, res_id, param);
CREATE INDEX search_quantity_by_value ON search_quantity (res_type, param, low, res_id);
CREATE INDEX search_quantity_by_resource ON search_quantity (res_type, res_id, param);
CREATE INDEX search_reference_by_target ON search_reference (res_type, param, target_id, target_type, res_id);
CREATE INDEX search_reference_to_target ON search_reference (target_type, target_id, res_type, param, res_id);
CREATE INDEX search_reference_by_url ON search_reference (res_type, param, url, res_id) WHERE url IS NOT NULL;
CREATE INDEX search_reference_by_identifier ON search_reference (res_type, param, identifier_value, identifier_system, res_id)
    WHERE identifier_value IS NOT NULL;
CREATE INDEX search_reference_by_resource ON search_reference (res_type, res_id, param);
CREATE INDEX search_uri_by_value ON search_uri (res_type, param, uri, res_id);
CREATE INDEX search_uri_by_resource ON search_uri (res_type, res_id, param);
