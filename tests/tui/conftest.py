"""Fixtures for the console's tests: a store on the test workspace, the app under Pilot."""

from __future__ import annotations

import asyncio
import time

import pytest
from qms import Store

from crowdtui.tui.app import CrowdApp


@pytest.fixture
async def store(workspace):
    s = await Store.open(workspace.db_path)
    yield s
    await s.close()


def add_agent(ws, path: str, *, command: str | None = None, description: str = "test agent",
              image: str | None = None) -> None:
    """Write agents/<path>/AGENT.md (the name is the last folder)."""
    name = path.rsplit("/", 1)[-1]
    folder = ws.agents_dir / path
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["---", f"name: {name}", f"description: {description}"]
    if command:
        lines.append(f"command: {command}")
    if image:
        lines.append(f"image: {image}")
    lines += ["launch: manual", "resources:", "  cpus: 0.5", "  memory: 128m", "  pids: 64",
              "---", f"# {name}", ""]
    (folder / "AGENT.md").write_text("\n".join(lines))


def store_app(ws, **kw) -> CrowdApp:
    """The app over the store only: no containers, no hub (flows that need only the store)."""
    kw.setdefault("docker", False)
    kw.setdefault("hub", False)
    kw.setdefault("watch_roster", False)
    kw.setdefault("poll_interval", 0.05)
    return CrowdApp(ws, **kw)


async def wait_for(pilot, predicate, timeout: float = 20.0, what: str = "condition"):
    """Let the app run until ``predicate()`` is true (generous bound, not a timing assert)."""
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
    handler that awaits I/O holds up everything behind it, keys included."""
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
    if not waiting:
        return
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:
        stuck = ", ".join(repr(n) for n in list(waiting.values())[:8])
        raise AssertionError(f"the app did not handle its messages within {timeout:.0f}s; "
                             f"still busy: {stuck}") from None


async def wait_store(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
