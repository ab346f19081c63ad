"""Fixtures for the console's tests: a store on the test workspace, the app under Pilot."""

from __future__ import annotations

import pytest
from qms import Store

from crowdtui.tui.app import CrowdApp
from tests.waiting import wait_for as wait_store  # noqa: F401  (polls the store, not the app)
from tests.waiting import wait_for_app as wait_for  # noqa: F401  (lets the app run)


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


async def registered(store, *names: str) -> None:
    """Wait until the console has synced ``names`` from the roster into the store (the agent
    list shows roster agents a moment before their registration lands)."""
    async def all_there():
        return all([await store.get_agent(n) is not None for n in names])
    await wait_store(all_there, timeout=30, what=f"{', '.join(names)} registered")


def _patch_pilot_wait() -> None:
    """Textual's pilot waits after every key for each widget of the screen to run a
    callback; a widget removed meanwhile (the terminal pane replaces its widget when the
    agent changes) never runs it, and the press times out though the app is idle.
    ``tests.waiting.settle`` waits the same way but skips removed widgets, and names the
    ones really stuck."""
    from textual.pilot import Pilot

    from tests.waiting import settle

    async def _wait_for_screen(self, timeout: float = 30.0) -> bool:
        try:
            self.app.screen
        except Exception:
            return False
        await settle(self, timeout)
        return True

    Pilot._wait_for_screen = _wait_for_screen


_patch_pilot_wait()
