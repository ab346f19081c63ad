-- The append-only change log every other process reads (activity view, audit, notification).
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL    NOT NULL,              -- epoch seconds
    actor   TEXT    NOT NULL,
    kind    TEXT    NOT NULL,              -- dotted: message.sent, doc.state, hub.call ...
    subject TEXT    NOT NULL DEFAULT '',   -- what it is about: an agent, a document id ...
    detail  TEXT    NOT NULL DEFAULT '{}'  -- JSON object
);
CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_subject ON events (subject, id);
