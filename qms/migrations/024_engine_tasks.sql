-- Scheduled tasks (cron, interval, one-shot) and their runs.
-- state: active | paused | done
CREATE TABLE engine_tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    agent       TEXT NOT NULL,
    schedule    TEXT NOT NULL,              -- as written: cron:..., every:..., at:...
    text        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'active',
    next_due    REAL,
    created_by  TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX engine_tasks_due ON engine_tasks(state, next_due);
CREATE TABLE engine_task_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL,
    due_at      REAL NOT NULL,
    ran_at      REAL NOT NULL,
    missed      INTEGER NOT NULL DEFAULT 0,  -- due times folded into this run
    outcome     TEXT NOT NULL,               -- sent | failed
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX engine_task_runs_task ON engine_task_runs(task_id, id);
