"""Scheduled tasks in the store, and the scheduler step that fires the due ones.

A due task becomes one message to its agent (from the task's creator, thread
``task:<name>``). The step claims a task (moves its next due time on and records a
run) in one transaction before sending, so a crash never fires a run twice; a run
left unfinished by a crash is marked ``interrupted`` on the next start.

Tasks an agent created (``by_agent``) are bound to their creator and to the quotas of
``qms.quotas`` (how many, how often, how long a text, checked when added):

- they fire only while the creator's state is ``running``: stopping an agent stops its
  schedules, starting it again resumes them (missed runs fold into one, as after downtime);
- never closer than their ``min_gap`` (the quota's ``task_min_interval`` when added);
- they are removed (``task.removed``, actor ``engine``) once the creator leaves the roster;
- their messages are sent in the creator's name, so they count against its message quota.

Tasks the operator created fire whatever state anyone is in, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from qms.errors import InvalidInput, NotFound
from qms.names import validate_name
from qms.quotas import check_task_in

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
    by_agent: bool = False  # created by an agent: bound to it (see the module's docstring)
    min_gap: float = 0.0  # seconds the scheduler keeps between two runs (0: the schedule's own)


@dataclass(frozen=True)
class Run:
    id: int
    task_id: int
    due_at: float
    ran_at: float
    missed: int
    outcome: str  # firing | sent | failed | interrupted
    detail: str


COLS = "id, name, agent, schedule, text, state, next_due, created_by, by_agent, min_gap"
RUNNING = "running"  # the registry state in which an agent's own tasks fire
#: the condition under which a task may fire: the operator's always, an agent's while it runs
MAY_FIRE = f"(by_agent = 0 OR created_by IN (SELECT name FROM agents WHERE state = '{RUNNING}'))"
RUN_COLS = "id, task_id, due_at, ran_at, missed, outcome, detail"


def _task(r) -> Task:
    return Task(r["id"], r["name"], r["agent"], r["schedule"], r["text"], r["state"],
                r["next_due"], r["created_by"], bool(r["by_agent"]), r["min_gap"])


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
    async with store.write() as db:  # counted and inserted in one transaction: no race past the quota
        by_agent = await check_task_in(db, store.quotas, actor, shortest_gap=sched.shortest_gap(now),
                                       text_bytes=len(text.encode()))
        min_gap = store.quotas.task_min_interval if by_agent else 0.0
        cur = await db.execute(
            "INSERT INTO engine_tasks (name, agent, schedule, text, next_due, created_by, created_at, "
            "by_agent, min_gap) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING id",
            (name, agent, sched.text, text, due, actor, now, int(by_agent), min_gap))
        row = await cur.fetchone()
        if row is None:
            raise InvalidInput(f"a task named {name!r} exists; pick another name or remove it first")
        detail = {"agent": agent, "schedule": sched.text, "next_due": due}
        if by_agent:
            detail["by_agent"] = True
        await store.append_event_in(db, actor, "task.added", name, detail)
    return Task(row[0], name, agent, sched.text, text, "active", due, actor, by_agent, min_gap)


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
    """The earliest due time of a task that may fire now (an agent's waits for it to run)."""
    rows = await store.query(f"SELECT MIN(next_due) FROM engine_tasks WHERE state = 'active' AND {MAY_FIRE}", ())
    return rows[0][0] if rows else None


async def remove_orphans(store) -> list[str]:
    """Remove the tasks whose creating agent left the roster; returns their names."""
    orphans = "by_agent = 1 AND created_by NOT IN (SELECT name FROM agents)"
    if not await store.query(f"SELECT 1 FROM engine_tasks WHERE {orphans} LIMIT 1", ()):
        return []  # the usual case: a read, no write transaction
    async with store.write() as db:
        rows = await db.execute_fetchall(
            f"DELETE FROM engine_tasks WHERE {orphans} RETURNING name, agent, created_by")
        for r in rows:
            await store.append_event_in(db, "engine", "task.removed", r["name"], {
                "agent": r["agent"], "created_by": r["created_by"],
                "reason": f"its creator {r['created_by']} left the roster"})
    return sorted(r["name"] for r in rows)


async def fire_due(store, now: float, send) -> list[Run]:
    """Fire every active task due at ``now``: one run each, however many due times passed.

    ``send(task) -> str`` delivers the task's message (returns a detail line) and may raise.
    Tasks of agents that left the roster are removed first; an agent's tasks wait while it
    is not running, and are held to their ``min_gap``.
    """
    await remove_orphans(store)
    rows = await store.query(
        f"SELECT {COLS} FROM engine_tasks WHERE state = 'active' AND next_due <= ? AND {MAY_FIRE} "
        "ORDER BY next_due, id", (now,))
    runs = []
    for task in map(_task, rows):
        sched = parse_schedule(task.schedule)
        nxt, missed = sched.after_run(task.next_due, now)
        if nxt is not None and task.min_gap:
            nxt = max(nxt, now + task.min_gap)
        async with store.write() as db:
            cur = await db.execute(  # the creator's state is checked again in the claim itself
                "UPDATE engine_tasks SET next_due = ?, state = ? WHERE id = ? AND next_due = ? "
                f"AND state = 'active' AND {MAY_FIRE} RETURNING id",
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
