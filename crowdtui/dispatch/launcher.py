"""Launch policies for routed messages: start the agent's container when its inbox gets work.

``launch: on_task`` / ``always``: start the container if it is not running;
``per_message``: a fresh container for each routed message (its home persists, the
container does not); ``manual``: leave it to the operator.

Every start and stop goes through ``crowdtui.runtime.lifecycle`` as the ``dispatch`` actor
(``qms.names.DISPATCH``). ``runtime`` may be None (no Docker engine yet, e.g. the console
before it connects): deliveries then start nothing, and stopping from a chat says why it cannot.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from qms.names import DISPATCH

from crowdtui.errors import CrowdError
from crowdtui.runtime import lifecycle


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
        if self.runtime is None:
            return
        d = await asyncio.to_thread(self.definition, name)
        if d is None or d.launch == "manual" or (d.launch == "on_task" and not self.on_task):
            return
        async with self._locks.setdefault(name, asyncio.Lock()):
            if d.launch == "per_message":
                info = await lifecycle.restart(self.runtime, self.store, d, actor=DISPATCH,
                                               reason="a routed message (launch per_message)")
                self.log(f"launched a fresh container for {name} ({info.short_id}): per_message")
                return
            agent = await self.store.get_agent(name)
            if agent is not None and agent.state == "running":
                return
            info = await lifecycle.start(self.runtime, self.store, d, actor=DISPATCH,
                                         reason=f"a routed message (launch {d.launch})")
            self.log(f"launched {name} ({info.short_id}): launch {d.launch}")

    async def stop(self, name: str) -> None:
        if self.runtime is None:
            raise CrowdError(f"cannot stop {name}: this host has no Docker engine connected; "
                             f"stop it with `crowdtui down {name}`")
        await lifecycle.stop(self.runtime, self.store, name, actor=DISPATCH, reason="asked from a chat")
        self.log(f"stopped {name} (asked from a chat)")

    async def start_always(self) -> list[str]:
        from crowdtui.roster import load_roster

        if self.runtime is None:
            return []
        started = []
        for d in await asyncio.to_thread(lambda: list(load_roster(self.workspace))):
            if d.launch == "always":
                try:
                    await lifecycle.start(self.runtime, self.store, d, actor=DISPATCH, reason="launch always")
                    started.append(d.name)
                except Exception as exc:  # one broken agent must not stop the host
                    self.log(f"could not start {d.name} (launch always): {exc}")
        return started
