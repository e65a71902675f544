-- Positions for R5's special search parameter `near` (Location.position), in WGS84 degrees,
-- with the point on the unit sphere (x, y, z) that the exact great-circle test and the order by
-- distance use without trigonometry. Written with the other index rows (termin-store-sql's
-- index.rs). Existing Locations get theirs at the next start: the search-parameter fingerprint
-- changed with the new parameter, so the index is rebuilt.
CREATE TABLE search_position (
    res_type  TEXT NOT NULL,
    res_id    TEXT NOT NULL,
    param     TEXT NOT NULL,
    latitude  REAL NOT NULL,
    longitude REAL NOT NULL,
    x         REAL NOT NULL,
    y         REAL NOT NULL,
    z         REAL NOT NULL
);
-- A near search reads one latitude band (its bounding box) of this index.
CREATE INDEX search_position_by_latitude ON search_position (res_type, param, latitude, longitude, res_id);
CREATE INDEX search_position_by_resource ON search_position (res_type, res_id, param);
