-- Channels: separate processes that bridge a chat platform to the engine over HTTP.
CREATE TABLE engine_channels (
    name          TEXT PRIMARY KEY,
    platform      TEXT NOT NULL,
    callback_url  TEXT NOT NULL,
    prefixes      TEXT NOT NULL,            -- JSON list of chat-id prefixes it owns
    token_hash    TEXT NOT NULL,            -- sha256 of the bearer token
    registered_at REAL NOT NULL,
    last_ok_at    REAL,
    failures      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'up', -- up | down (deregistered)
    callback_token TEXT NOT NULL DEFAULT ''  -- sent to the channel so it knows calls are ours
);
