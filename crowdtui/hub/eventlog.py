"""Group commit for the hub's audit events.

Every tool call is recorded (see ``crowdtui.hub.server``). Two kinds of record go through
one queue, in order, and the events that queue up while one transaction commits are
written together in the next: one fsync for many calls.

* ``append`` — the caller goes on only once its event is committed. A call that changes
  something is recorded this way: ``hub.calling`` before it runs (the call is refused if
  that write fails) and ``hub.call`` with its outcome before the answer goes back.
* ``note`` — read-only calls (``hub.call``) and refusals (``hub.denied``): the answer
  does not wait for the write. Noted events linger up to ``LINGER`` (20 ms, or until
  ``BATCH`` are queued, or an ``append`` comes) so that many share one trip to the
  writer. If the oldest event not yet on disk was queued more than ``MAX_LAG`` (100 ms)
  ago, the call waits for its own write (and so for every one before it). So at any answer, every event queued more than
  100 ms before it is on disk: a crash loses at most the events of read-only calls and
  refusals answered in the last 100 ms before the hub's last answer, never an event of
  a change. ``drain`` (on a clean stop) writes everything queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NamedTuple

from qms.event_rows import INSERT_EVENT

log = logging.getLogger(__name__)

MAX_LAG = 0.1  # seconds: the oldest unwritten event an answer may leave behind
LINGER = 0.02  # seconds a noted event may wait for others to share its write
BATCH = 512  # ... or until this many are queued


class _Queued(NamedTuple):
    actor: str
    kind: str
    subject: str
    detail: dict | None
    fut: asyncio.Future
    queued: float  # time.monotonic() when queued


class EventLog:
    def __init__(self, store: Any, *, max_lag: float = MAX_LAG, linger: float = LINGER):
        self.store = store
        self.max_lag = max_lag
        self.linger = min(linger, max_lag / 2)
        self._queue: list[_Queued] = []
        self._now = asyncio.Event()  # set: write what is queued without lingering
        self._writing_since: float | None = None  # queued-time of the oldest event being written
        self._task: asyncio.Task | None = None

    def _enqueue(self, actor: str, kind: str, subject: str, detail: dict | None, urgent: bool) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(actor, kind, subject, detail, fut, time.monotonic()))
        if urgent or len(self._queue) >= BATCH:
            self._now.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="hub-eventlog")
        return fut

    def lag(self) -> float:
        """Seconds since the oldest event not yet on disk was queued (0 when none)."""
        oldest = self._writing_since if self._writing_since is not None else (
            self._queue[0].queued if self._queue else None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    async def append(self, actor: str, kind: str, subject: str, detail: dict | None = None) -> int:
        """Record an event and return its id once it is committed."""
        return await self._enqueue(actor, kind, subject, detail, urgent=True)

    async def note(self, actor: str, kind: str, subject: str, detail: dict | None = None) -> None:
        """Record an event without waiting for the disk, unless the backlog is older than
        ``max_lag`` (then wait for this write: the bound a crash can lose)."""
        fut = self._enqueue(actor, kind, subject, detail, urgent=False)
        fut.add_done_callback(_log_lost)
        if self.lag() > self.max_lag:
            self._now.set()
            await asyncio.shield(fut)

    async def drain(self) -> None:
        """Wait until every event queued so far is written (or has failed)."""
        while self._task is not None and not self._task.done():
            self._now.set()
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        while self._queue:
            if not self._now.is_set():  # only noted events: let others join them
                wait = self._queue[0].queued + self.linger - time.monotonic()
                if wait > 0:
                    try:
                        await asyncio.wait_for(self._now.wait(), wait)
                    except asyncio.TimeoutError:
                        pass
            self._now.clear()
            batch, self._queue = self._queue, []
            self._writing_since = batch[0].queued
            try:
                await self._write(batch)
            finally:
                self._writing_since = None

    async def _write(self, batch: list[_Queued]) -> None:
        """One job of the store's group commit for the whole batch: one hop to the writer
        thread, one transaction shared with whatever else is being written."""
        rows: list[tuple] = []
        waiting: list[asyncio.Future] = []
        for q in batch:
            try:
                rows.append(self.store.event_row(q.actor, q.kind, q.subject, q.detail))
            except Exception as exc:  # a bad event must not sink the others
                q.fut.set_exception(exc)
                continue
            waiting.append(q.fut)
        if not rows:
            return
        try:
            ids = await self.store.write_sync(lambda conn: [conn.execute(INSERT_EVENT, row).lastrowid for row in rows])
        except BaseException as exc:
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError("event write cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for fut, event_id in zip(waiting, ids):
            if not fut.done():
                fut.set_result(int(event_id or 0))


def _log_lost(fut: asyncio.Future) -> None:
    """A noted event nobody awaits: say when it could not be written."""
    if fut.cancelled():
        log.error("an audit event was not written (the write was cancelled)")
    elif fut.exception() is not None:
        log.error("an audit event was not written: %s", fut.exception())
