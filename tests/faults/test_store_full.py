"""Store faults: a full disk and a read-only database give one clear error at every door,
nothing is half written, and writes work again once the fault is gone.

The workspace lives on a small tmpfs the test mounts (root, as CI) and removes. Doors:
the store API, an agent's MCP call over its real socket, dispatch's channel HTTP API
(503), and the CLI (one line, exit 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from qms import Store
from qms.errors import StoreUnavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs mounted for the test (and unmounted after)."""
    assert os.geteuid() == 0, "the fault suite mounts filesystems: run it as root (CI does)"
    point = tmp_path / "disk"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; returns the filler (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def cli(ws, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.fixture
async def crowd(small_disk):
    """A workspace on the small disk: roster of one agent, store, started hub, dispatch API."""
    from crowdtui.dispatch.api import build_app
    from crowdtui.dispatch.http_server import LocalServer
    from crowdtui.dispatch.service import Dispatch
    from crowdtui.hub.hub import Hub
    from crowdtui.roster import AgentDef
    from crowdtui.workspace import init_workspace

    ws, _ = init_workspace(small_disk / "ws", sample=False)
    (ws.agents_dir / "lead").mkdir(parents=True, exist_ok=True)
    (ws.agents_dir / "lead" / "AGENT.md").write_text("---\nname: lead\ndescription: leads\n---\nLead.\n")
    store = await Store.open(ws.db_path)
    await store.upsert_agent("lead", path="lead", tier=0)
    lead = AgentDef(name="lead", file=ws.agents_dir / "lead" / "AGENT.md", rel_path="lead", tier=0)
    hub = Hub(ws, store, definitions={"lead": lead}.get)
    await hub.start()
    door = await hub.open_door("lead")
    dispatch = Dispatch(store, log=lambda line: None)
    server = await LocalServer(build_app(dispatch, register_key="k")).start()
    http = httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10)
    r = await http.post("/channels/register", headers={"Authorization": "Bearer k"},
                        json={"name": "chat", "callback_url": "http://127.0.0.1:9/", "prefixes": ["chat:"]})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    try:
        yield ws, store, door, http, token
    finally:
        await http.aclose()
        await server.stop()
        await dispatch.stop()
        await hub.stop()
        await store.close()


async def counts(store) -> tuple[int, int]:
    messages = (await store.query("SELECT count(*) FROM messages"))[0][0]
    events = (await store.query("SELECT count(*) FROM events"))[0][0]
    return messages, events


async def every_door_refuses(ws, store, door, http, token, says: str) -> None:
    big = "x" * 60_000  # more than the space a full disk has left, whatever SQLite reserved
    with pytest.raises(StoreUnavailable, match=says):
        await store.send_message("operator", "lead", big)
    async with Client(_client(door)) as c:
        with pytest.raises(MCPError) as refused:
            await c.call_tool("send_message", {"to": "operator", "body": big})
    assert "cannot take writes" in refused.value.error.message, refused.value.error.message
    r = await http.post("/channels/inbound", headers={"Authorization": f"Bearer {token}"},
                        json={"id": "m1", "chat": "chat:1", "sender": "ann", "text": big[:30_000]})
    assert r.status_code == 503 and "cannot take writes" in r.json()["error"], r.text
    assert r.headers.get("retry-after")
    result = cli(ws, "send", "lead", big)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "cannot take writes" in lines[0], result.stderr


def _client(door):
    from crowdtui.hub.unix_transport import unix_client

    return unix_client(door)


async def test_a_full_disk_refuses_clearly_at_every_door_and_recovers(crowd, small_disk):
    ws, store, door, http, token = crowd
    await store.send_message("operator", "lead", "before the disk filled")
    before = await counts(store)
    filler = fill(small_disk)
    try:
        await every_door_refuses(ws, store, door, http, token, "disk holding it is full")
        assert (await store.query("PRAGMA quick_check"))[0][0] == "ok"
        assert (await counts(store))[0] == before[0]  # no message half written
    finally:
        filler.unlink()
    # space is back: every door writes again
    [m] = await store.send_message("operator", "lead", "after")
    async with Client(_client(door)) as c:
        await c.call_tool("send_message", {"to": "operator", "body": "lead is back"})
    r = await http.post("/channels/inbound", headers={"Authorization": f"Bearer {token}"},
                        json={"id": "m2", "chat": "chat:1", "sender": "ann", "text": "hello again"})
    assert r.status_code == 200, r.text
    assert cli(ws, "send", "lead", "from the cli").returncode == 0
    bodies = [x.body for x in await store.inbox("lead")]
    assert "before the disk filled" in bodies and "after" in bodies and "from the cli" in bodies
    assert "lead is back" in [x.body for x in await store.inbox("operator")]


def test_a_read_only_store_is_one_clear_line_and_works_again_once_writable(tmp_path):
    """A workspace whose store the process may not write (here: seen through a read-only bind
    mount, since an open file stays writable however its filesystem changes): the CLI and
    `crowdtui serve` each say so in one line and start nothing; writable again, they work."""
    from crowdtui.workspace import init_workspace

    assert os.geteuid() == 0
    ws, _ = init_workspace(tmp_path / "real", sample=False)
    assert cli(ws, "send", "operator", "first").returncode == 0
    view = tmp_path / "view"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(ws.root), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        ro = type(ws)(view, ws.config)
        for args in (("send", "operator", "second"), ("serve", "--no-runtime")):
            result = cli(ro, *args)
            lines = result.stderr.strip().splitlines()
            assert result.returncode != 0 and len(lines) == 1, (args, result.stderr)
            assert "check the path and permissions" in lines[0] or "read-only" in lines[0], lines
        subprocess.run(["mount", "-o", "remount,bind,rw", str(view)], check=True)
        assert cli(ro, "send", "operator", "second").returncode == 0
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    result = cli(ws, "inbox", "--json")
    assert "first" in result.stdout and "second" in result.stdout, result.stdout


async def test_the_console_status_bar_says_the_store_cannot_take_writes_until_it_can(small_disk):
    """The operator's send from the console on a full disk: the compose error and a status-bar
    line; once space is back, the next send goes through and the line goes away."""
    from crowdtui.tui.screens.compose import Draft
    from crowdtui.workspace import init_workspace
    from tests.tui.conftest import add_agent, store_app, wait_for

    ws, _ = init_workspace(small_disk / "ws", sample=False)
    add_agent(ws, "alice")
    app = store_app(ws)
    async with app.run_test(size=(200, 40)) as pilot:
        bar = app.query_one("#status-bar")
        await wait_for(pilot, lambda: app.store is not None, what="the console's store")
        await app.send_draft(Draft(to=["operator"], body="warm the store up"))
        filler = fill(small_disk)
        try:
            with pytest.raises(StoreUnavailable):
                await app.send_draft(Draft(to=["operator"], body="x" * 60_000))
            await pilot.pause()
            assert "store ✗" in str(bar.render()) and "full" in str(bar.render()), str(bar.render())
        finally:
            filler.unlink()
        await app.send_draft(Draft(to=["operator"], body="space is back"))
        await pilot.pause()
        assert "store ✗" not in str(bar.render())
