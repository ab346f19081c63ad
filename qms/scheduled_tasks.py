"""Scheduled tasks (``engine_tasks``) and their runs (``engine_task_runs``).

Not the review and approval tasks of documents (``tasks``, :mod:`qms.doc_workflow`): these
are dispatch's timed messages. The store keeps the rows, the quota check on an agent's
task (:func:`qms.quotas.check_task`, in the insert's own transaction), the claim of a due
run (one transaction, so a crash never fires a run twice) and the events (``task.added|
paused|resumed|removed|ran``). Parsing schedules and computing due times is the caller's.

Tasks an agent created (``by_agent``) fire only while their creator's state is ``running``
(:data:`MAY_FIRE`) and are removed once the creator leaves the roster.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qms.errors import InvalidInput, NotFound
from qms.event_rows import add_event
from qms.names import DISPATCH, validate_name
from qms.quotas import check_task

if TYPE_CHECKING:
    from qms.store import Store

COLUMNS = "id, name, agent, schedule, text, state, next_due, created_by, by_agent, min_gap"
RUN_COLUMNS = "id, task_id, due_at, ran_at, missed, outcome, detail"
RUNNING = "running"  # the registry state in which an agent's own tasks fire
#: the condition under which a task may fire: the operator's always, an agent's while it runs
MAY_FIRE = f"(by_agent = 0 OR created_by IN (SELECT name FROM agents WHERE state = '{RUNNING}'))"
ORPHANS = "by_agent = 1 AND created_by NOT IN (SELECT name FROM agents)"


@dataclass(frozen=True)
class ScheduledTask:
    id: int
    name: str
    agent: str
    schedule: str  # as written: cron:..., every:..., at:...
    text: str
    state: str  # active | paused | done
    next_due: float | None
    created_by: str
    by_agent: bool = False  # created by an agent: bound to it (see the module's docstring)
    min_gap: float = 0.0  # seconds the scheduler keeps between two runs (0: the schedule's own)


@dataclass(frozen=True)
class TaskRun:
    id: int
    task_id: int
    due_at: float
    ran_at: float
    missed: int
    outcome: str  # firing | sent | failed | interrupted
    detail: str


def _task(r: sqlite3.Row) -> ScheduledTask:
    return ScheduledTask(r["id"], r["name"], r["agent"], r["schedule"], r["text"], r["state"],
                         r["next_due"], r["created_by"], bool(r["by_agent"]), r["min_gap"])


def _run(r: sqlite3.Row) -> TaskRun:
    return TaskRun(r["id"], r["task_id"], r["due_at"], r["ran_at"], r["missed"], r["outcome"], r["detail"])


async def get_task(store: "Store", name: str) -> ScheduledTask:
    rows = await store.query(f"SELECT {COLUMNS} FROM engine_tasks WHERE name = ?", (name,))
    if not rows:
        raise NotFound(f"no task named {name!r}; `crowdtui task ls` lists them")
    return _task(rows[0])


async def list_tasks(store: "Store") -> list[ScheduledTask]:
    return [_task(r) for r in await store.query(f"SELECT {COLUMNS} FROM engine_tasks ORDER BY name")]


async def runs_of(store: "Store", task_id: int, limit: int = 50) -> list[TaskRun]:
    """The task's newest ``limit`` runs, oldest first."""
    rows = await store.query(f"SELECT {RUN_COLUMNS} FROM engine_task_runs WHERE task_id = ? ORDER BY id DESC LIMIT ?",
                             (task_id, limit))
    return [_run(r) for r in reversed(rows)]


async def due_tasks(store: "Store", now: float) -> list[ScheduledTask]:
    """Active tasks due at ``now`` that may fire, earliest first."""
    rows = await store.query(
        f"SELECT {COLUMNS} FROM engine_tasks WHERE state = 'active' AND next_due <= ? AND {MAY_FIRE} "
        "ORDER BY next_due, id", (now,))
    return [_task(r) for r in rows]


async def next_due_at(store: "Store") -> float | None:
    """The earliest due time of a task that may fire now (an agent's waits for it to run)."""
    rows = await store.query(f"SELECT MIN(next_due) FROM engine_tasks WHERE state = 'active' AND {MAY_FIRE}")
    return rows[0][0] if rows else None


async def add_task(store: "Store", *, name: str, agent: str, schedule: str, text: str, actor: str,
                   next_due: float | None, shortest_gap: float, now: float) -> ScheduledTask:
    """Add a task (``schedule`` already checked by the caller, ``next_due`` its first due
    time). An agent's task is counted against its quotas in the same transaction."""
    validate_name(name)
    validate_name(agent)

    def tx(conn: sqlite3.Connection) -> ScheduledTask:
        by_agent = check_task(conn, store.quotas, actor, shortest_gap=shortest_gap, text_bytes=len(text.encode()))
        min_gap = store.quotas.task_min_interval if by_agent else 0.0
        row = conn.execute(
            "INSERT INTO engine_tasks (name, agent, schedule, text, next_due, created_by, created_at, "
            "by_agent, min_gap) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING id",
            (name, agent, schedule, text, next_due, actor, now, int(by_agent), min_gap)).fetchone()
        if row is None:
            raise InvalidInput(f"a task named {name!r} exists; pick another name or remove it first")
        detail: dict[str, Any] = {"agent": agent, "schedule": schedule, "next_due": next_due}
        if by_agent:
            detail["by_agent"] = True
        add_event(conn, store, actor, "task.added", name, detail)
        return ScheduledTask(row[0], name, agent, schedule, text, "active", next_due, actor, by_agent, min_gap)

    return await store.write_sync(tx)


async def set_paused(store: "Store", task: ScheduledTask, paused: bool, *, actor: str,
                     next_due: float | None = None) -> None:
    """Pause ``task``, or resume it with ``next_due`` (the caller computes it from now)."""

    def tx(conn: sqlite3.Connection) -> None:
        if paused:
            conn.execute("UPDATE engine_tasks SET state = 'paused' WHERE id = ?", (task.id,))
        else:
            conn.execute("UPDATE engine_tasks SET state = 'active', next_due = ? WHERE id = ?", (next_due, task.id))
        add_event(conn, store, actor, "task.paused" if paused else "task.resumed", task.name, {})

    await store.write_sync(tx)


async def remove_task(store: "Store", task: ScheduledTask, *, actor: str) -> None:
    def tx(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM engine_tasks WHERE id = ?", (task.id,))
        add_event(conn, store, actor, "task.removed", task.name, {"agent": task.agent})

    await store.write_sync(tx)


async def recover_runs(store: "Store") -> int:
    """Mark runs a crash left half-done (claimed, never sent) as interrupted; returns how many."""
    return await store.write_sync(lambda conn: conn.execute(
        "UPDATE engine_task_runs SET outcome = 'interrupted', "
        "detail = 'dispatch stopped before sending' WHERE outcome = 'firing'").rowcount)


async def remove_orphans(store: "Store", *, actor: str = DISPATCH) -> list[str]:
    """Remove the tasks whose creating agent left the roster; returns their names."""
    if not await store.query(f"SELECT 1 FROM engine_tasks WHERE {ORPHANS} LIMIT 1"):
        return []  # the usual case: a read, no write transaction

    def tx(conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute(f"DELETE FROM engine_tasks WHERE {ORPHANS} RETURNING name, agent, created_by").fetchall()
        for r in rows:
            add_event(conn, store, actor, "task.removed", r["name"], {
                "agent": r["agent"], "created_by": r["created_by"],
                "reason": f"its creator {r['created_by']} left the roster"})
        return sorted(r["name"] for r in rows)

    return await store.write_sync(tx)


async def claim_run(store: "Store", task: ScheduledTask, *, next_due: float | None, missed: int,
                    now: float) -> int | None:
    """Claim one run of ``task`` (due at ``task.next_due``): move its due time to ``next_due``
    (None: a one-shot, now done) and record the run as ``firing``, in one transaction.
    None when someone else (another dispatch, a pause, the creator stopping) got there first."""

    def tx(conn: sqlite3.Connection) -> int | None:
        claimed = conn.execute(  # the creator's state is checked again in the claim itself
            "UPDATE engine_tasks SET next_due = ?, state = ? WHERE id = ? AND next_due = ? "
            f"AND state = 'active' AND {MAY_FIRE} RETURNING id",
            (next_due, "done" if next_due is None else "active", task.id, task.next_due)).fetchone()
        if claimed is None:
            return None
        return conn.execute(
            "INSERT INTO engine_task_runs (task_id, due_at, ran_at, missed, outcome) "
            "VALUES (?, ?, ?, ?, 'firing') RETURNING id", (task.id, task.next_due, now, missed)).fetchone()[0]

    return await store.write_sync(tx)


async def finish_run(store: "Store", task: ScheduledTask, run_id: int, *, outcome: str, detail: str,
                     missed: int, next_due: float | None, actor: str = DISPATCH) -> None:
    """Record how a claimed run ended (``sent`` or ``failed``) and its ``task.ran`` event."""

    def tx(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE engine_task_runs SET outcome = ?, detail = ? WHERE id = ?", (outcome, detail, run_id))
        add_event(conn, store, actor, "task.ran", task.name,
                  {"outcome": outcome, "missed": missed, "due_at": task.next_due, "next_due": next_due,
                   "detail": detail})

    await store.write_sync(tx)
