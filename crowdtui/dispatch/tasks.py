"""Scheduled tasks: checking schedules, and the scheduler step that fires the due ones.

The rows, the quota check, the claim of a run and the events live in the store
(:mod:`qms.scheduled_tasks`); this module parses schedules and computes due times.

A due task becomes one message to its agent (from the task's creator, thread
``task:<name>``). The step claims a task (moves its next due time on and records a
run) in one transaction before sending, so a crash never fires a run twice; a run
left unfinished by a crash is marked ``interrupted`` on the next start.

Tasks an agent created (``by_agent``) are bound to their creator and to the quotas of
``qms.quotas`` (how many, how often, how long a text, checked when added):

- they fire only while the creator's state is ``running``: stopping an agent stops its
  schedules, starting it again resumes them (missed runs fold into one, as after downtime);
- never closer than their ``min_gap`` (the quota's ``task_min_interval`` when added);
- they are removed (``task.removed``, actor ``dispatch``) once the creator leaves the roster;
- their messages are sent in the creator's name, so they count against its message quota.

Tasks the operator created fire whatever state anyone is in, as before.
"""

from __future__ import annotations

from qms import scheduled_tasks as table
from qms.errors import InvalidInput
from qms.names import validate_name
from qms.scheduled_tasks import MAY_FIRE, RUNNING, ScheduledTask, TaskRun

from crowdtui.dispatch.schedules import BadSchedule, parse_schedule

MAX_TASK_TEXT = 16 * 1024

Task = ScheduledTask
Run = TaskRun
__all__ = ["MAX_TASK_TEXT", "MAY_FIRE", "RUNNING", "Run", "Task", "add_task", "fire_due", "get_task",
           "list_tasks", "next_due_at", "recover_runs", "remove_orphans", "remove_task", "runs_of", "set_paused"]

get_task = table.get_task
list_tasks = table.list_tasks
recover_runs = table.recover_runs
next_due_at = table.next_due_at
remove_orphans = table.remove_orphans


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
    return await table.add_task(store, name=name, agent=agent, schedule=sched.text, text=text, actor=actor,
                                next_due=sched.first_due(now), shortest_gap=sched.shortest_gap(now), now=now)


async def runs_of(store, name: str, limit: int = 50) -> list[Run]:
    task = await get_task(store, name)
    return await table.runs_of(store, task.id, limit)


async def set_paused(store, name: str, paused: bool, *, actor: str, now: float) -> Task:
    """Pause or resume. A resumed task's next due time is computed from now (no backlog)."""
    task = await get_task(store, name)
    if task.state == "done":
        raise InvalidInput(f"task {name!r} has run (one-shot) and is done; add a new one")
    sched = parse_schedule(task.schedule)
    due = task.next_due
    if not paused and sched.kind != "at" and (due is None or due <= now):
        due = sched.next_after(now)
    await table.set_paused(store, task, paused, actor=actor, next_due=due)
    return await get_task(store, name)


async def remove_task(store, name: str, *, actor: str) -> Task:
    task = await get_task(store, name)
    await table.remove_task(store, task, actor=actor)
    return task


async def fire_due(store, now: float, send) -> list[Run]:
    """Fire every active task due at ``now``: one run each, however many due times passed.

    ``send(task) -> str`` delivers the task's message (returns a detail line) and may raise.
    Tasks of agents that left the roster are removed first; an agent's tasks wait while it
    is not running, and are held to their ``min_gap``.
    """
    await remove_orphans(store)
    runs = []
    for task in await table.due_tasks(store, now):
        sched = parse_schedule(task.schedule)
        nxt, missed = sched.after_run(task.next_due, now)
        if nxt is not None and task.min_gap:
            nxt = max(nxt, now + task.min_gap)
        run_id = await table.claim_run(store, task, next_due=nxt, missed=missed, now=now)
        if run_id is None:
            continue  # someone else (another dispatch, a pause) got there first
        try:
            detail = await send(task)
            outcome = "sent"
        except Exception as exc:  # the run is recorded as failed; the schedule goes on
            detail, outcome = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__, "failed"
        await table.finish_run(store, task, run_id, outcome=outcome, detail=detail, missed=missed, next_due=nxt)
        runs.append(Run(run_id, task.id, task.next_due, now, missed, outcome, detail))
    return runs
