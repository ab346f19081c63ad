"""Keeping the hub's doors bounded: who may connect, refusals recorded without flooding, and
memory handed back to the system when connections end. The numbers live in ``limits``.

    budget = ConnectionBudget(limits.connection_budget())
    reason = budget.admit("mcp:lead", limits.connections_per_door)   # None: admitted
    ...
    budget.release("mcp:lead")
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ConnectionBudget:
    """Open connections per door and across all doors (weights: an egress tunnel holds two fds)."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self.per_door: dict[str, int] = {}

    def admit(self, door: str, per_door: int, weight: int = 1) -> str | None:
        """Take a place for one connection of ``door``; None, or why it is refused."""
        if self.per_door.get(door, 0) >= per_door:
            return f"this door already has {per_door} connections open (the limit per agent)"
        if self.used + weight > self.total:
            return f"the hub has {self.used} connections open (the limit across all agents is {self.total})"
        self.per_door[door] = self.per_door.get(door, 0) + 1
        self.used += weight
        return None

    def release(self, door: str, weight: int = 1) -> None:
        n = self.per_door.get(door, 0) - 1
        if n > 0:
            self.per_door[door] = n
        else:
            self.per_door.pop(door, None)
        self.used = max(0, self.used - weight)


async def refuse_connection(writer: asyncio.StreamWriter, code: int, message: str, timeout: float = 1.0) -> None:
    """Answer a connection that is not admitted with one JSON-RPC error line, then close it."""
    line = (json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}) + "\n").encode()
    try:
        writer.write(line)
        await asyncio.wait_for(writer.drain(), timeout)
        writer.close()
    except (OSError, asyncio.TimeoutError, TimeoutError):
        writer.transport.abort()


Record = Callable[[str, str, dict], Awaitable[None]]  # (kind, agent, detail)


class RefusalReporter:
    """Record refusals as events, at most one per (agent, door, reason) each ``every`` seconds.

    The first refusal is recorded at once; those that follow within the window are counted
    and recorded together when it ends (``refused``: how many), so a flood of refused
    connections costs the audit one event per window, and none go uncounted.
    """

    def __init__(self, record: Record, every: float, kind: str = "hub.refused"):
        self.record = record
        self.every = every
        self.kind = kind
        self._windows: dict[tuple, list] = {}  # key -> [count since last event, detail]
        self._tasks: set[asyncio.Task] = set()

    def refused(self, agent: str, door: str, reason: str, detail: dict | None = None) -> None:
        key = (agent, door, reason)
        window = self._windows.get(key)
        if window is not None:
            window[0] += 1
            window[1] = detail or {}
            return
        self._windows[key] = [0, detail or {}]
        self._emit(agent, door, reason, 1, detail or {})
        asyncio.get_running_loop().call_later(self.every, self._close_window, key)

    def _close_window(self, key: tuple) -> None:
        count, detail = self._windows.pop(key, (0, {}))
        if count:
            agent, door, reason = key
            self._windows[key] = [0, detail]
            self._emit(agent, door, reason, count, detail)
            asyncio.get_running_loop().call_later(self.every, self._close_window, key)

    def _emit(self, agent: str, door: str, reason: str, count: int, detail: dict) -> None:
        event = {"door": door, "reason": reason, "refused": count, "window_s": self.every, **detail}
        task = asyncio.get_running_loop().create_task(self.record(self.kind, agent, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_libc = None
_trim_pending = False


def _malloc_trim() -> None:
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _libc.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


def return_memory(delay: float = 0.5) -> None:
    """After a connection ends: hand freed heap pages back to the system (glibc ``malloc_trim``).

    Python frees an answer's objects when its connection ends, but glibc keeps the pages
    for reuse, so the process would stay at its peak. Coalesced: one trim per ``delay``,
    run in a thread (it walks the heap)."""
    global _trim_pending
    if _trim_pending:
        return
    _trim_pending = True
    loop = asyncio.get_running_loop()

    def run() -> None:
        global _trim_pending
        _trim_pending = False
        try:
            loop.run_in_executor(None, _malloc_trim)
        except RuntimeError:  # the loop is shutting down
            pass

    loop.call_later(delay, run)
