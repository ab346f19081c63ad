"""Launch policies for routed messages: start the agent's container when its inbox gets work.

``launch: on_task`` / ``always``: start the container if it is not running;
``per_message``: a fresh container for each routed message (its home persists, the
container does not); ``manual``: leave it to the operator.
"""

from __future__ import annotations

import asyncio
from typing import Callable


class Launcher:
    """``on_task=False`` leaves ``on_task`` to someone else (the hub's launch policy, which
    reacts to every message, chat or not, and also applies shutdown policies)."""

    def __init__(self, workspace, store, runtime, *, log: Callable[[str], None], on_task: bool = True) -> None:
        self.workspace = workspace
        self.store = store
        self.runtime = runtime
        self.log = log
        self.on_task = on_task
        self._locks: dict[str, asyncio.Lock] = {}

    def definition(self, name: str):
        from crowdtui.roster import load_roster

        return load_roster(self.workspace).get(name)

    async def delivered(self, name: str) -> None:
        d = await asyncio.to_thread(self.definition, name)
        if d is None or d.launch == "manual" or (d.launch == "on_task" and not self.on_task):
            return
        async with self._locks.setdefault(name, asyncio.Lock()):
            if d.launch == "per_message":
                info = await self.runtime.restart(d)
                self.log(f"launched a fresh container for {name} ({info.short_id}): per_message")
                return
            agent = await self.store.get_agent(name)
            if agent is not None and agent.state == "running":
                return
            info = await self.runtime.start(d)
            self.log(f"launched {name} ({info.short_id}): launch {d.launch}")

    async def stop(self, name: str) -> None:
        await self.runtime.stop(name)
        self.log(f"stopped {name} (asked from a chat)")

    async def start_always(self) -> list[str]:
        from crowdtui.roster import load_roster

        started = []
        for d in await asyncio.to_thread(lambda: list(load_roster(self.workspace))):
            if d.launch == "always":
                try:
                    await self.runtime.start(d)
                    started.append(d.name)
                except Exception as exc:  # one broken agent must not stop serve
                    self.log(f"could not start {d.name} (launch always): {exc}")
        return started
