-- Messages: one row per recipient (a broadcast is one row per agent).
CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sender     TEXT    NOT NULL,
    recipient  TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    priority   TEXT    NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
    prio_rank  INTEGER NOT NULL,            -- 0 high, 1 normal, 2 low: inbox order
    thread     TEXT,
    created_at REAL    NOT NULL,
    read_at    REAL
);
CREATE INDEX messages_inbox ON messages (recipient, prio_rank, id);
CREATE INDEX messages_unread ON messages (recipient) WHERE read_at IS NULL;
