-- Inbound chat messages, stored once per (channel, id) before they are acknowledged.
-- status: new (stored, not yet routed) | routed | held (onboarding) | command | refused | denied
CREATE TABLE engine_inbound (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel      TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    chat         TEXT NOT NULL,
    platform     TEXT NOT NULL,
    room         TEXT,
    sender       TEXT,
    sender_name  TEXT,
    text         TEXT NOT NULL,
    sent_at      TEXT,
    reply_to     TEXT,
    attachments  TEXT NOT NULL DEFAULT '[]',
    received_at  REAL NOT NULL,
    status       TEXT NOT NULL DEFAULT 'new',
    agent        TEXT,
    message_ids  TEXT,                      -- JSON list of qms message ids it became
    detail       TEXT NOT NULL DEFAULT '',
    UNIQUE (channel, msg_id)
);
CREATE INDEX engine_inbound_status ON engine_inbound(status, seq);
CREATE INDEX engine_inbound_chat ON engine_inbound(chat, seq);
