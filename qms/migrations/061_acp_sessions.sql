-- Agents in mode: acp (crowdtui/hub/acp): the Agent Client Protocol session each agent's adapter
-- last gave, so that after a container restart the session is loaded (session/load) or resumed
-- where the adapter says it can. One row per agent; replaced on each new session.
CREATE TABLE acp_sessions (
    agent      TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    cwd        TEXT NOT NULL,
    adapter    TEXT NOT NULL DEFAULT '',   -- the adapter's name and version (agentInfo)
    can_load   INTEGER NOT NULL DEFAULT 0, -- 1: session/load, 2: session/resume, 0: neither advertised
    updated_at REAL NOT NULL
);
