"""Waiting in tests, in one place: poll a condition under a generous bound (never a timing
assert) and, when the bound passes, fail saying what was awaited.

- :func:`wait_for` polls a plain or async predicate (store rows, container states, a
  process's output).
- :func:`wait_for_app` lets a Textual app run until a predicate holds, and :func:`settle`
  waits until every node of its screen has handled its queued messages; on a timeout it
  names the nodes still busy (a handler that awaits I/O holds up everything behind it).
"""

from __future__ import annotations

import asyncio
import inspect
import time


async def wait_for(predicate, timeout: float = 60.0, what: str = "condition", *, interval: float = 0.1):
    """Poll ``predicate()`` (plain or async) until it returns something truthy; return that.
    After ``timeout`` seconds raise AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_app(pilot, predicate, timeout: float = 20.0, what: str = "condition"):
    """Let the app run until ``predicate()`` is true (generous bound, not a timing assert).
    A predicate that raises (a widget not mounted yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await settle(pilot, max(1.0, deadline - time.monotonic()))
        await asyncio.sleep(0.05)
        pilot.app.screen._on_timer_update()  # as pilot.pause does: a frame is due


async def settle(pilot, timeout: float) -> None:
    """Wait until every node of the screen has handled what was queued for it (as
    ``pilot.pause`` does), and on a timeout name the nodes that did not: a message
    handler that awaits I/O holds up everything behind it, keys included. A node removed
    from the screen meanwhile is not waited for (its queue closed with it)."""
    app = pilot.app
    nodes = [app, *app.screen.walk_children(with_self=True)]
    waiting: dict[int, object] = {}
    done = asyncio.Event()

    def handled(node) -> None:
        waiting.pop(id(node), None)
        if not waiting:
            done.set()

    for node in nodes:
        waiting[id(node)] = node
        if not node.call_later(handled, node):
            waiting.pop(id(node), None)
    deadline = time.monotonic() + timeout
    while waiting:
        try:
            await asyncio.wait_for(done.wait(), 0.25)
        except asyncio.TimeoutError:
            pass
        for key, node in list(waiting.items()):  # removed meanwhile: its queue is never run
            if not node.is_attached or node._closing or node._closed:
                waiting.pop(key, None)
        if waiting and time.monotonic() > deadline:
            stuck = ", ".join(repr(n) for n in list(waiting.values())[:8])
            raise AssertionError(f"the app did not handle its messages within {timeout:.0f}s; "
                                 f"still busy: {stuck}")
