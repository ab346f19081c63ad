-- Outbound queue: replies waiting for the channel that owns the chat. Retried, bounded.
-- state: pending | sent | failed
CREATE TABLE engine_outbound (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    chat         TEXT NOT NULL,
    kind         TEXT NOT NULL,             -- send | typing
    text         TEXT NOT NULL DEFAULT '',
    reply_to     TEXT,
    agent        TEXT NOT NULL,
    created_at   REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    channel      TEXT,
    last_error   TEXT NOT NULL DEFAULT '',
    sent_at      REAL
);
CREATE INDEX engine_outbound_due ON engine_outbound(state, next_at);
