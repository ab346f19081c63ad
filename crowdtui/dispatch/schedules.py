"""Schedules for tasks: cron, interval, one-shot. Pure: times are float epoch seconds (UTC).

Written forms (what ``crowdtui task add --schedule`` takes):

- ``cron:*/5 * * * *`` — a cron expression (croniter), evaluated in UTC;
- ``every:90s`` / ``every:5m`` / ``every:2h`` / ``every:1d`` — a fixed interval;
- ``at:2026-11-22T05:00:00Z`` (ISO 8601; no zone means UTC) — once.

Catch-up rule: when dispatch was down past one or more due times, a task runs once
for all of them and its next due time is the first one after *now*.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

MIN_INTERVAL = 1.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


class BadSchedule(ValueError):
    """A schedule that cannot be parsed; ``str()`` says what to write instead."""


@dataclass(frozen=True)
class Schedule:
    kind: Literal["cron", "every", "at"]
    spec: str  # cron expression, interval seconds as text, or epoch seconds as text

    @property
    def text(self) -> str:
        if self.kind == "every":
            return f"every:{_fmt_interval(float(self.spec))}"
        if self.kind == "at":
            return "at:" + datetime.fromtimestamp(float(self.spec), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"cron:{self.spec}"

    def first_due(self, now: float) -> float | None:
        """When a task created at ``now`` is first due."""
        if self.kind == "at":
            return float(self.spec)
        return self.next_after(now)

    def next_after(self, t: float) -> float | None:
        """The first due time strictly after ``t`` (None: never again)."""
        if self.kind == "at":
            return None
        if self.kind == "every":
            return t + float(self.spec)
        from croniter import croniter

        base = datetime.fromtimestamp(t, timezone.utc)
        return float(croniter(self.spec, base).get_next(float))

    def shortest_gap(self, now: float, samples: int = 48) -> float:
        """The shortest time between two runs over the next ``samples`` runs from ``now``
        (``inf`` for a one-shot). Exact for intervals; for cron, a look ahead — the
        scheduler still holds an agent's task to its ``min_gap`` when it fires."""
        if self.kind == "at":
            return math.inf
        if self.kind == "every":
            return float(self.spec)
        gap, t = math.inf, self.next_after(now)
        for _ in range(samples):
            nxt = self.next_after(t) if t is not None else None
            if nxt is None:
                break
            gap, t = min(gap, nxt - t), nxt
        return gap

    def after_run(self, due: float, now: float) -> tuple[float | None, int]:
        """Next due time after running the run that was due at ``due`` at time ``now``.

        Returns (next_due, missed): ``missed`` is how many further due times passed
        unrun during downtime (they are folded into this one run).
        """
        if self.kind == "at":
            return None, 0
        if self.kind == "every":
            iv = float(self.spec)
            steps = max(1, math.floor((now - due) / iv) + 1)
            return due + steps * iv, steps - 1
        missed = 0
        nxt = self.next_after(due)
        while nxt is not None and nxt <= now:
            missed += 1
            if missed >= 1000:  # down for a long time: stop counting, jump ahead
                nxt = self.next_after(now)
                break
            nxt = self.next_after(nxt)
        return nxt, missed


def _fmt_interval(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_schedule(text: str) -> Schedule:
    if not isinstance(text, str) or not text.strip():
        raise BadSchedule("empty schedule; write cron:'*/5 * * * *', every:10m or at:2026-01-01T09:00:00Z")
    kind, sep, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if not sep or kind not in ("cron", "every", "at"):
        raise BadSchedule(
            f"schedule {text!r} must start with cron:, every: or at: (e.g. every:10m)"
        )
    if kind == "cron":
        from croniter import croniter

        if not croniter.is_valid(rest) or len(rest.split()) not in (5, 6):
            raise BadSchedule(f"{rest!r} is not a cron expression; write five fields like '*/5 * * * *'")
        return Schedule("cron", rest)
    if kind == "every":
        m = _EVERY.fullmatch(rest.lower())
        if not m:
            raise BadSchedule(f"interval {rest!r} not understood; write a number and s, m, h or d (every:90s)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds < MIN_INTERVAL:
            raise BadSchedule(f"interval {rest!r} is shorter than {MIN_INTERVAL:g}s; use a longer one")
        return Schedule("every", repr(seconds))
    try:
        when = datetime.fromisoformat(rest.replace("Z", "+00:00"))
    except ValueError:
        raise BadSchedule(f"time {rest!r} not understood; write ISO 8601 like 2026-01-01T09:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return Schedule("at", repr(when.timestamp()))
