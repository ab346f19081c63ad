-- Per-chat state: the sticky agent (set by a bare @name) and which agents a chat reached
-- (an agent may reply only to chats routed to it or to one of its children).
CREATE TABLE engine_sticky (
    chat     TEXT PRIMARY KEY,
    agent    TEXT NOT NULL,
    set_at   REAL NOT NULL
);
CREATE TABLE engine_chat_agents (
    chat     TEXT NOT NULL,
    agent    TEXT NOT NULL,
    last_at  REAL NOT NULL,
    PRIMARY KEY (chat, agent)
);
