-- The agent registry. The operator is not a row: it always exists (names.OPERATOR).
CREATE TABLE agents (
    name         TEXT    PRIMARY KEY,
    path         TEXT    NOT NULL,          -- folder under agents/, e.g. "lead/research"
    tier         INTEGER NOT NULL,
    parent       TEXT,
    description  TEXT    NOT NULL DEFAULT '',
    state        TEXT    NOT NULL DEFAULT 'stopped',
    state_detail TEXT    NOT NULL DEFAULT '',
    status       TEXT,                      -- working | waiting | done | blocked
    status_note  TEXT    NOT NULL DEFAULT '',
    last_seen    REAL,
    created_at   REAL    NOT NULL,
    updated_at   REAL    NOT NULL
);
