-- Routes: ordered match expressions that pick the agent for a chat message.
CREATE TABLE engine_routes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    position    INTEGER NOT NULL,
    match       TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    note        TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL,
    created_at  REAL    NOT NULL
);
CREATE INDEX engine_routes_position ON engine_routes(position, id);
