-- Permission requests from agents (qms/permissions.py): one row per request, waiting in the
-- crew's one approval queue until answered (allow/reject, once/always), expired or cancelled.
CREATE TABLE permission_requests (
    id          INTEGER PRIMARY KEY,
    agent       TEXT NOT NULL,
    tool        TEXT NOT NULL,             -- the tool key "always" rules are kept by
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}', -- JSON object (the tool call's input, bounded)
    diff        TEXT,                      -- unified diff text, when the call changes files
    options     TEXT NOT NULL,             -- JSON list of the outcomes the agent offers
    state       TEXT NOT NULL DEFAULT 'pending', -- pending | answered | expired | cancelled
    outcome     TEXT,                      -- allow_once | allow_always | reject_once | reject_always | expired | cancelled
    answered_by TEXT,                      -- operator, an agent (the requester's ancestor), rule, or who closed it
    opened_at   REAL NOT NULL,
    expires_at  REAL,                      -- pending past this is rejected as expired
    answered_at REAL
);
CREATE INDEX permission_requests_state ON permission_requests (state, id);
CREATE INDEX permission_requests_agent ON permission_requests (agent, id);

-- "Always" answers, per agent and tool key: a request that matches is answered at once.
CREATE TABLE permission_rules (
    agent      TEXT NOT NULL,
    tool       TEXT NOT NULL,
    outcome    TEXT NOT NULL,              -- allow_always | reject_always
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    request_id INTEGER,                    -- the request whose answer made it
    PRIMARY KEY (agent, tool)
);
