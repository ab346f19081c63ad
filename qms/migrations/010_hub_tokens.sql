-- Bearer tokens for agents that reach the hub over streamable HTTP (issue 4).
-- Only a SHA-256 hash of each token is stored; the token itself is shown once.
CREATE TABLE hub_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    agent        TEXT    NOT NULL,             -- who the token speaks for
    token_hash   TEXT    NOT NULL UNIQUE,      -- hex sha256 of the token
    prefix       TEXT    NOT NULL,             -- first characters, to tell tokens apart
    created_at   REAL    NOT NULL,
    created_by   TEXT    NOT NULL,
    revoked_at   REAL,                         -- NULL while valid
    last_used_at REAL
);
CREATE INDEX hub_tokens_agent ON hub_tokens (agent, id);
