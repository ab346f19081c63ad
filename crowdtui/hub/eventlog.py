"""Group commit for the hub's audit events.

Every tool call is recorded: ``hub.denied`` when refused; ``hub.calling`` before an
allowed call runs (the hub refuses the call if that write fails) and ``hub.call`` with
its outcome before the answer goes back (see ``crowdtui.hub.server``). With many agents
calling at once, the events that queue up while one transaction commits are written
together in the next one: one fsync for many calls instead of one each.
"""

from __future__ import annotations

import asyncio
from typing import Any


class EventLog:
    def __init__(self, store: Any):
        self.store = store
        self._queue: list[tuple[str, str, str, dict | None, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def append(self, actor: str, kind: str, subject: str, detail: dict | None = None) -> int:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((actor, kind, subject, detail, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="hub-eventlog")
        return await fut

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            outcomes: list[tuple[asyncio.Future, int | None, BaseException | None]] = []
            try:
                async with self.store.write() as db:
                    for actor, kind, subject, detail, fut in batch:
                        try:
                            outcomes.append((fut, await self.store.append_event_in(db, actor, kind, subject, detail), None))
                        except Exception as exc:  # a bad event must not sink the others
                            outcomes.append((fut, None, exc))
            except BaseException as exc:
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("event write cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for fut, value, exc in outcomes:
                if fut.done():
                    continue
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
