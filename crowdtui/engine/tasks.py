"""Scheduled tasks in the store, and the scheduler step that fires the due ones.

A due task becomes one message to its agent (from the task's creator, thread
``task:<name>``). The step claims a task (moves its next due time on and records a
run) in one transaction before sending, so a crash never fires a run twice; a run
left unfinished by a crash is marked ``interrupted`` on the next start.
"""

from __future__ import annotations

from dataclasses import dataclass

from qms.errors import InvalidInput, NotFound
from qms.names import validate_name

from crowdtui.engine.schedules import BadSchedule, parse_schedule

MAX_TASK_TEXT = 16 * 1024


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    agent: str
    schedule: str
    text: str
    state: str  # active | paused | done
    next_due: float | None
    created_by: str


@dataclass(frozen=True)
class Run:
    id: int
    task_id: int
    due_at: float
    ran_at: float
    missed: int
    outcome: str  # firing | sent | failed | interrupted
    detail: str


COLS = "id, name, agent, schedule, text, state, next_due, created_by"
RUN_COLS = "id, task_id, due_at, ran_at, missed, outcome, detail"


def _task(r) -> Task:
    return Task(r["id"], r["name"], r["agent"], r["schedule"], r["text"], r["state"],
                r["next_due"], r["created_by"])


def _run(r) -> Run:
    return Run(r["id"], r["task_id"], r["due_at"], r["ran_at"], r["missed"], r["outcome"], r["detail"])


async def add_task(store, *, name: str, agent: str, schedule: str, text: str, actor: str,
                   now: float) -> Task:
    validate_name(name)
    validate_name(agent)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("task text is empty; say what the agent should do when it is due")
    if len(text.encode()) > MAX_TASK_TEXT:
        raise InvalidInput(f"task text is over {MAX_TASK_TEXT} bytes; put details in a document")
    try:
        sched = parse_schedule(schedule)
    except BadSchedule as exc:
        raise InvalidInput(str(exc)) from None
    due = sched.first_due(now)
    async with store.write() as db:
        cur = await db.execute(
            "INSERT INTO engine_tasks (name, agent, schedule, text, next_due, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING id",
            (name, agent, sched.text, text, due, actor, now))
        row = await cur.fetchone()
        if row is None:
            raise InvalidInput(f"a task named {name!r} exists; pick another name or remove it first")
        await store.append_event_in(db, actor, "task.added", name,
                                    {"agent": agent, "schedule": sched.text, "next_due": due})
    return Task(row[0], name, agent, sched.text, text, "active", due, actor)


async def get_task(store, name: str) -> Task:
    rows = await store.query(f"SELECT {COLS} FROM engine_tasks WHERE name = ?", (name,))
    if not rows:
        raise NotFound(f"no task named {name!r}; `crowdtui task ls` lists them")
    return _task(rows[0])


async def list_tasks(store) -> list[Task]:
    return [_task(r) for r in await store.query(f"SELECT {COLS} FROM engine_tasks ORDER BY name", ())]


async def runs_of(store, name: str, limit: int = 50) -> list[Run]:
    task = await get_task(store, name)
    rows = await store.query(
        f"SELECT {RUN_COLS} FROM engine_task_runs WHERE task_id = ? ORDER BY id DESC LIMIT ?",
        (task.id, limit))
    return [_run(r) for r in reversed(rows)]


async def set_paused(store, name: str, paused: bool, *, actor: str, now: float) -> Task:
    """Pause or resume. A resumed task's next due time is computed from now (no backlog)."""
    task = await get_task(store, name)
    if task.state == "done":
        raise InvalidInput(f"task {name!r} has run (one-shot) and is done; add a new one")
    sched = parse_schedule(task.schedule)
    async with store.write() as db:
        if paused:
            await db.execute("UPDATE engine_tasks SET state = 'paused' WHERE id = ?", (task.id,))
        else:
            due = task.next_due
            if sched.kind != "at" and (due is None or due <= now):
                due = sched.next_after(now)
            await db.execute("UPDATE engine_tasks SET state = 'active', next_due = ? WHERE id = ?",
                             (due, task.id))
        await store.append_event_in(db, actor, "task.paused" if paused else "task.resumed", name, {})
    return await get_task(store, name)


async def remove_task(store, name: str, *, actor: str) -> Task:
    task = await get_task(store, name)
    async with store.write() as db:
        await db.execute("DELETE FROM engine_tasks WHERE id = ?", (task.id,))
        await store.append_event_in(db, actor, "task.removed", name, {"agent": task.agent})
    return task


async def recover_runs(store) -> int:
    """Mark runs a crash left half-done (claimed, never sent) as interrupted."""
    async with store.write() as db:
        cur = await db.execute(
            "UPDATE engine_task_runs SET outcome = 'interrupted', "
            "detail = 'the engine stopped before sending' WHERE outcome = 'firing'")
        return cur.rowcount


async def next_due_at(store) -> float | None:
    rows = await store.query("SELECT MIN(next_due) FROM engine_tasks WHERE state = 'active'", ())
    return rows[0][0] if rows else None


async def fire_due(store, now: float, send) -> list[Run]:
    """Fire every active task due at ``now``: one run each, however many due times passed.

    ``send(task) -> str`` delivers the task's message (returns a detail line) and may raise.
    """
    rows = await store.query(
        f"SELECT {COLS} FROM engine_tasks WHERE state = 'active' AND next_due <= ? ORDER BY next_due, id",
        (now,))
    runs = []
    for task in map(_task, rows):
        sched = parse_schedule(task.schedule)
        nxt, missed = sched.after_run(task.next_due, now)
        async with store.write() as db:
            cur = await db.execute(
                "UPDATE engine_tasks SET next_due = ?, state = ? WHERE id = ? AND next_due = ? "
                "AND state = 'active' RETURNING id",
                (nxt, "done" if nxt is None else "active", task.id, task.next_due))
            if await cur.fetchone() is None:
                continue  # someone else (another engine, a pause) got there first
            cur = await db.execute(
                "INSERT INTO engine_task_runs (task_id, due_at, ran_at, missed, outcome) "
                "VALUES (?, ?, ?, ?, 'firing') RETURNING id",
                (task.id, task.next_due, now, missed))
            run_id = (await cur.fetchone())[0]
        try:
            detail = await send(task)
            outcome = "sent"
        except Exception as exc:  # the run is recorded as failed; the schedule goes on
            detail, outcome = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__, "failed"
        async with store.write() as db:
            await db.execute("UPDATE engine_task_runs SET outcome = ?, detail = ? WHERE id = ?",
                             (outcome, detail, run_id))
            await store.append_event_in(db, "engine", "task.ran", task.name,
                                        {"outcome": outcome, "missed": missed, "due_at": task.next_due,
                                         "next_due": nxt, "detail": detail})
        runs.append(Run(run_id, task.id, task.next_due, now, missed, outcome, detail))
    return runs
