"""What the console does at rest: as little as possible, until something changes.

* :class:`StoreSignal` tells whether the store's SQLite files changed since it last
  looked (a ``stat`` of the database and its WAL, no query and no thread hop), so the
  app reads new events only after a commit; every ``force_every`` seconds it says
  "changed" anyway (a safety net against a write the file times cannot show).
* :class:`Pacer` keeps one one-shot timer for "the earliest moment something may be
  due" (an idle prompt that will have waited long enough) instead of a fixed tick.
* :func:`stats_due` paces container stats: often while agents print, rarely at rest,
  not while the operator types.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional


class StoreSignal:
    """Change detection for a SQLite database in WAL mode: every commit writes the
    ``-wal`` file (or the database itself after a checkpoint), so its size and
    modification time change."""

    def __init__(self, db_path: str | Path, *, force_every: float = 5.0) -> None:
        self.paths = [str(db_path), f"{db_path}-wal"]
        self.force_every = force_every
        self._last: Optional[tuple] = None
        self._forced_at = float("-inf")
        #: how often ``changed`` said yes (tests count these, not seconds)
        self.hits = 0

    def signature(self) -> tuple:
        out = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError:
                out.append(None)
            else:
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def changed(self, now: float) -> bool:
        sig = self.signature()
        if sig != self._last or now - self._forced_at >= self.force_every:
            self._last = sig
            self._forced_at = now
            self.hits += 1
            return True
        return False


class Pacer:
    """One pending wake-up at the earliest requested moment (``schedule(at)``); asking
    for a later one while an earlier is pending costs nothing."""

    def __init__(self, set_timer: Callable[[float, Callable[[], Any]], Any],
                 callback: Callable[[], Any], clock: Callable[[], float]) -> None:
        self._set_timer = set_timer
        self._callback = callback
        self._clock = clock
        self._timer: Any = None
        self.due: Optional[float] = None

    def schedule(self, at: Optional[float]) -> None:
        if at is None or (self.due is not None and self.due <= at):
            return
        if self._timer is not None:
            self._timer.stop()
        self.due = at
        self._timer = self._set_timer(max(0.0, at - self._clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.due = None
        self._callback()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = None
        self.due = None


def stats_due(now: float, last_stats: float, last_output: float, busy_every: float,
              idle_every: float, typed_at: float = float("-inf"), grace: float = 2.0) -> float:
    """When the next stats sample is due: ``busy_every`` after the last one while some
    agent printed since, else ``idle_every`` (stats of quiet agents barely move). While
    the operator types (a key within ``grace`` seconds) a sample waits, up to
    ``idle_every`` after the last one: sampling holds the interpreter for milliseconds,
    and the echo of a key should not wait for it."""
    due = last_stats + (busy_every if last_output >= last_stats else idle_every)
    if now - typed_at < grace:
        due = min(max(due, typed_at + grace), last_stats + idle_every)
    return due
