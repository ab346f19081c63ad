-- Quotas (qms/quotas.py): per-agent counting in one SQL statement over the table a change
-- writes to, inside its transaction. ``size`` is a virtual column (UTF-8 bytes of the
-- text); it is computed once, when a row enters the index, and kept only there.
ALTER TABLE messages ADD COLUMN size INTEGER GENERATED ALWAYS AS (length(CAST(body AS BLOB))) VIRTUAL;
CREATE INDEX messages_sender_quota ON messages (sender, created_at, size);

ALTER TABLE doc_versions ADD COLUMN size INTEGER GENERATED ALWAYS AS (length(CAST(content AS BLOB))) VIRTUAL;
CREATE INDEX doc_versions_author_quota ON doc_versions (author, created_at, size);

-- Scheduled tasks an agent created are bound to it (crowdtui/dispatch/tasks.py): they fire
-- only while it is running, never closer than min_gap seconds apart, and are removed
-- when it leaves the roster. Tasks the operator created have by_agent = 0.
ALTER TABLE engine_tasks ADD COLUMN by_agent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE engine_tasks ADD COLUMN min_gap REAL NOT NULL DEFAULT 0;
CREATE INDEX engine_tasks_creator ON engine_tasks (created_by);
-- Tasks agents created before this migration are bound to them as well.
UPDATE engine_tasks SET by_agent = 1, min_gap = 60 WHERE created_by IN (SELECT name FROM agents);
