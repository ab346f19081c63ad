-- Review and approval tasks made by routing a document; one per assignee per round.
CREATE TABLE tasks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id     TEXT    NOT NULL REFERENCES documents (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('review', 'approval')),
    assignee   TEXT    NOT NULL,
    round      INTEGER NOT NULL,
    routed_by  TEXT    NOT NULL,
    status     TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'cancelled')),
    outcome    TEXT,                         -- recommend | request-updates | approved
    comment    TEXT,
    created_at REAL    NOT NULL,
    done_at    REAL,
    message_id INTEGER                       -- the inbox message that announced it
);
CREATE INDEX tasks_open ON tasks (assignee) WHERE status = 'open';
CREATE INDEX tasks_doc ON tasks (doc_id, round);
