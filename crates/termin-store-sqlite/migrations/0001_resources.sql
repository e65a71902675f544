CREATE TABLE resource (
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated TEXT    NOT NULL,
    body         TEXT,
    PRIMARY KEY (res_type, res_id)
) WITHOUT ROWID;

CREATE TABLE resource_history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated TEXT    NOT NULL,
    change       TEXT    NOT NULL,
    body         TEXT,
    UNIQUE (res_type, res_id, version)
);
CREATE INDEX resource_history_by_type ON resource_history (res_type, seq);
CREATE INDEX resource_history_by_resource ON resource_history (res_type, res_id, seq);

CREATE TABLE search_token (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT,
    code     TEXT NOT NULL
);
CREATE INDEX search_token_by_code ON search_token (res_type, param, code, system);
CREATE INDEX search_token_by_resource ON search_token (res_type, res_id);
