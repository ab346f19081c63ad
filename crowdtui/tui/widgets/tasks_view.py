"""Scheduled tasks (8): cron, interval or one-shot messages to an agent, with the next run.
n adds, p pauses or resumes the highlighted task, D removes it."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from rich.text import Text
from textual.binding import Binding

from crowdtui.tui.screens.form import Field
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.store_table import StoreTableView, cell
from qms.names import OPERATOR

STATE_STYLE = {"active": "green", "paused": "yellow", "done": "dim"}


class TasksView(StoreTableView):
    TITLE = "Scheduled tasks"
    HINT = "n add  p pause/resume  D remove"
    EMPTY = "none yet: n adds one"
    COLUMNS = [("name", "name", None), ("state", "state", 7), ("agent", "agent", None),
               ("schedule", "schedule", None), ("next", "next run", 10), ("last", "last run", None),
               ("text", "text", None)]
    KINDS = frozenset({"task"})
    BINDINGS = [
        Binding("n", "add", "add task"),
        Binding("p", "pause", "pause/resume"),
        Binding("D", "remove", "remove"),
    ]

    async def load(self) -> list[Any]:
        from crowdtui.dispatch.tasks import list_tasks, runs_of

        store = self.app.store
        tasks = await list_tasks(store)
        self.last = {t.name: (await runs_of(store, t.name, limit=1) or [None])[-1] for t in tasks}
        return tasks

    def key(self, item: Any) -> str:
        return item.name

    def cells(self, t: Any) -> list[Text]:
        run = getattr(self, "last", {}).get(t.name)
        last = f"{run.outcome} {self.when(run.ran_at)}" if run else "never"
        due = self.when(t.next_due) if t.state == "active" else "-"
        return [cell(t.name, "bold"), Text(t.state, STATE_STYLE.get(t.state, "")), cell(t.agent),
                cell(t.schedule), Text(due), cell(last), cell(t.text[:40], "dim")]

    def action_add(self) -> None:
        self.act(self.add)

    async def add(self) -> bool:
        from crowdtui.dispatch.tasks import add_task

        vals = await self.ask("Schedule a task", [
            Field("name", "name", required=True),
            Field("agent", "for agent", required=True),
            Field("schedule", "schedule (every:1h, cron:0 9 * * 1-5, at:2026-12-24T09:00)", required=True),
            Field("text", "message the agent gets when it is due", required=True)])
        if vals is None:
            return False
        store = self.app.store

        async def write() -> Any:
            if await store.get_agent(vals["agent"].strip()) is None:
                raise ValueError(f"no agent named {inert(vals['agent'])!r} is registered")
            return await add_task(store, name=vals["name"].strip(), agent=vals["agent"].strip(),
                                  schedule=vals["schedule"].strip(), text=vals["text"], actor=OPERATOR,
                                  now=time.time())
        return await self.write(lambda r: f"task {r.name} scheduled", write)

    def action_pause(self) -> None:
        task = self.chosen("task")
        if task is not None:
            self.act(partial(self.pause, task, task.state == "active"))

    async def pause(self, task: Any, paused: bool) -> bool:
        from crowdtui.dispatch.tasks import set_paused

        return await self.write(lambda r: f"task {r.name} {r.state}",
                                lambda: set_paused(self.app.store, task.name, paused, actor=OPERATOR,
                                                   now=time.time()))

    def action_remove(self) -> None:
        task = self.chosen("task")
        if task is not None:
            self.act(partial(self.remove, task))

    async def remove(self, task: Any) -> bool:
        from crowdtui.dispatch.tasks import remove_task

        if await self.ask(f"Remove task {inert(task.name)}? ctrl+s confirms", []) is None:
            return False
        return await self.write(lambda r: f"task {r.name} removed",
                                lambda: remove_task(self.app.store, task.name, actor=OPERATOR))
