-- Separation of duties: the version a review/approval task was made for, and its cycle
-- ('pre', or 'post' for the execution cycle of executable types).
ALTER TABLE tasks ADD COLUMN version INTEGER;
ALTER TABLE tasks ADD COLUMN cycle TEXT CHECK (cycle IN ('pre', 'post'));
-- older tasks: the newest version checked in before the task was made; their cycle stays
-- unknown (NULL counts for both cycles)
UPDATE tasks SET version = (
    SELECT MAX(v.number) FROM doc_versions v WHERE v.doc_id = tasks.doc_id AND v.created_at <= tasks.created_at
);
