"""Following the ``events`` table: the one way a process reads what changed, as it happens.

``EventFollower`` keeps a position (the id of the last event handed out) and reads the
events after it, oldest first, optionally only some kinds (``agent.state``, ``doc.*``):

- ``await f.read()``: one batch now (a policy that ticks on its own reads this way);
- ``async for batch in f``: batches as they come, every ``interval`` seconds (at once
  again while batches come full), until ``f.stop()`` or cancellation;
- ``async for batch in f.drain()``: what is there now, page by page, then stop.

A read that fails (the store busy, locked or briefly unavailable) is logged and retried on
the next tick, from the same position: the stream neither ends nor skips nor repeats an
event. Each id is handed out once, in order, however the batches fall.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable, Iterable

from qms.errors import InvalidInput
from qms.models import Event

log = logging.getLogger(__name__)

BATCH = 500  # events read at most per query
INTERVAL = 0.5  # seconds between reads when nothing is pending


class EventFollower:
    """Follow ``store``'s events after ``after`` (None: from the newest event when the
    follower starts, so only what happens from then on).

    ``kinds``: exact kinds or families (``doc.*``), as ``Store.events_after`` takes them.
    ``changed``: asked before each timed read; False skips the query (e.g. a cheap file
    check that nothing was committed). A full batch or a failed read reads again without
    asking. ``heartbeat``: when nothing came for this many seconds, the iterator hands out
    an empty batch (at once on the first tick), so a caller can do its periodic work in
    the same loop.
    ``on_error``: called with each failed read's exception (after it is logged).
    """

    def __init__(self, store: Any, after: int | None = None, *,
                 kinds: Iterable[str] | str | None = None, interval: float = INTERVAL,
                 batch: int = BATCH, changed: Callable[[], bool] | None = None,
                 heartbeat: float | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise InvalidInput(f"after must be a non-negative event id, not {after!r}")
        if not interval > 0:
            raise InvalidInput(f"interval must be a positive number of seconds, not {interval!r}")
        self.store = store
        self.last: int | None = after
        self.kinds = [kinds] if isinstance(kinds, str) else (None if kinds is None else list(kinds))
        self.interval = interval
        self.batch = batch
        self.changed = changed
        self.heartbeat = heartbeat
        self.on_error = on_error
        self.failures = 0  # reads failed in a row (0 once a read goes through)
        self._stop = asyncio.Event()
        self._again = False  # read at once, without asking ``changed``
        self._gated_reads = 0  # reads that ``changed`` allowed

    async def start(self) -> int:
        """Fix the position (the newest event now, unless given); returns it."""
        if self.last is None:
            self.last = await self.store.last_event_id()
        return self.last

    async def read(self, *, advance: bool = True) -> list[Event]:
        """The next batch (may be empty), and move past it (with ``advance=False`` the
        caller moves ``last`` itself, event by event). Raises what the store raises."""
        await self.start()
        events = await self.store.events_after(self.last, kinds=self.kinds, limit=self.batch)
        if events and advance:
            self.last = events[-1].id
        return events

    def stop(self) -> None:
        """End the iteration: a waiting ``async for`` returns at once."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    async def _tick(self) -> list[Event] | None:
        """One attempt: the batch, or None when the read was skipped or failed."""
        gated = not self._again and self.changed is not None
        if gated and not self.changed():
            return None
        try:
            events = await self.read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # busy, locked, briefly unavailable: the next tick retries
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("reading events after %s failed (%d in a row): %s; retrying",
                            self.last, self.failures, exc)
            if self.on_error is not None:
                self.on_error(exc)
            self._again = True
            return None
        if self.failures:
            log.info("reading events works again after %d failure(s)", self.failures)
        self.failures = 0
        self._again = len(events) >= self.batch
        if gated:
            self._gated_reads += 1
            # The files change a moment before a commit is visible to readers: a gated
            # read that found nothing (past the first) looks once more on the next tick.
            self._again = self._again or (not events and self._gated_reads > 1)
        return events

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def __aiter__(self) -> AsyncIterator[list[Event]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[list[Event]]:
        loop = asyncio.get_running_loop()
        quiet_since = float("-inf")  # a heartbeat is due at once
        while not self._stop.is_set():
            events = await self._tick()
            if self._stop.is_set():
                return
            now = loop.time()
            if events:
                quiet_since = now
                yield events
            elif self.heartbeat is not None and now - quiet_since >= self.heartbeat:
                quiet_since = now
                yield []
            if self._stop.is_set():
                return
            full = bool(events) and len(events) >= self.batch
            await self._sleep(0 if full else self.interval)

    async def drain(self) -> AsyncIterator[list[Event]]:
        """The events there now, batch by batch (each non-empty), then stop. Errors raise."""
        while True:
            events = await self.read()
            if events:
                yield events
            if len(events) < self.batch:
                return
