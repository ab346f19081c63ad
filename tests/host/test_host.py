"""One host for every entry point (``crowdtui.host``), one agent-lifecycle API
(``crowdtui.runtime.lifecycle``), and ``crowdtui up`` with no host running.

Real parts only: the real CLI as subprocesses, the console under Textual's pilot, the
real Docker engine, a real MCP client over the agent's real unix socket.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from mcp import Client

from crowdtui.hub.unix_transport import unix_client
from crowdtui.tui.app import CrowdApp
from crowdtui.tui.widgets.agent_list import AgentList
from tests.tui.conftest import add_agent, wait_for, wait_store

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DISPATCH_TOOLS = {"reply", "list_routes", "add_route", "list_tasks", "add_task"}


def crowdtui(ws, *args: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                            cwd=REPO, stdout=stdout, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)


def cli(ws, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def end(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def tools_listed(ws, store, name: str) -> list[str]:
    """What the hub lists to ``name`` (running now, as the state follower would record it)
    through its own door, with a real MCP client."""
    sock = ws.ipc_dir(name) / "mcp.sock"
    await wait_store(_gone(sock), 30, what=f"no door for {name} before it runs")
    await store.set_agent_state(name, "running", actor="runtime")
    await wait_store(_there(sock), 30, what=f"{name}'s door")
    async with Client(unix_client(sock)) as c:
        names = sorted(t.name for t in (await c.list_tools()).tools)
    await store.set_agent_state(name, "exited", actor="runtime")
    await wait_store(_gone(sock), 30, what=f"{name}'s door to close")
    return names


def _there(path):
    async def check():
        return path.exists()
    return check


def _gone(path):
    async def check():
        return not path.exists()
    return check


async def hub_started_by(store, pid: int, after: int) -> bool:
    return any(e.detail.get("pid") == pid for e in await store.events_after(after, kinds=["hub.started"]))


async def test_every_entry_point_serves_the_same_tools_to_a_tier0_agent(workspace, store):
    add_agent(workspace, "lead")  # tier 0: every tool it is granted is listed
    seen: dict[str, list[str]] = {}

    # crowdtui serve
    before = await store.last_event_id()
    proc = crowdtui(workspace, "serve")
    try:
        await wait_store(lambda: hub_started_by(store, proc.pid, before), 60, what="serve's hub")
        seen["serve"] = await tools_listed(workspace, store, "lead")
    finally:
        end(proc)

    # crowdtui hub
    proc = crowdtui(workspace, "hub")
    try:
        out = ""
        while "  runtime:" not in out and proc.poll() is None:  # the banner's last line
            out += await asyncio.to_thread(proc.stdout.readline)
        assert f"serving {workspace.root} (pid {proc.pid})" in out, out
        seen["hub"] = await tools_listed(workspace, store, "lead")
    finally:
        out += end(proc)
    assert "  dispatch: http://127.0.0.1:" in out, out  # the same host runs dispatch too

    # crowdtui web (the web server runs the host; each visit's console uses it)
    before = await store.last_event_id()
    proc = crowdtui(workspace, "web", "--port", str(free_port()))
    try:
        await wait_store(lambda: hub_started_by(store, proc.pid, before), 60, what="web's hub")
        seen["web"] = await tools_listed(workspace, store, "lead")
    finally:
        end(proc)

    # the console's own hub (no Docker here: the hub and dispatch need none)
    app = CrowdApp(workspace, docker=False, watch_roster=False, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.hub_mode == "own", 30, what="the console's own host")
        assert app.hub.dispatch_running
        seen["console"] = await tools_listed(workspace, store, "lead")

    assert DISPATCH_TOOLS <= set(seen["serve"]), seen["serve"]
    assert {"send_message", "get_messages"} <= set(seen["serve"])
    for entry, tools in seen.items():
        assert tools == seen["serve"], (entry, sorted(set(tools) ^ set(seen["serve"])))


@pytest.mark.docker
async def test_the_consoles_start_stop_and_restart_are_operator_events(workspace, store, docker_client,
                                                                        agent_image):
    add_agent(workspace, "worker", command="[sleep, infinity]")
    before = await store.last_event_id()
    app = CrowdApp(workspace, hub=False, watch_roster=False, poll_interval=0.1, live_stats=False)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("worker"), 30,
                       what="runtime and roster")
        agents.select("worker")
        await pilot.pause()

        async def actions():
            return [(e.actor, e.kind) for e in await store.events_after(before, kinds=["runtime.*"])
                    if e.subject == "worker"]

        await pilot.press("s")
        await wait_store(lambda: _has(actions, ("operator", "runtime.start")), 90, what="runtime.start")
        await wait_for(pilot, lambda: agents.row("worker").running, 60, what="worker running")
        first = (await asyncio.to_thread(docker_client.containers.list,
                                         filters={"label": ["crowdtui.agent=worker", f"crowdtui.workspace={workspace.id}"]}))[0].id
        await pilot.press("r")
        await wait_store(lambda: _has(actions, ("operator", "runtime.restart")), 90, what="runtime.restart")
        await wait_for(pilot, lambda: agents.row("worker").running, 60, what="worker running again")
        second = (await asyncio.to_thread(docker_client.containers.list,
                                          filters={"label": ["crowdtui.agent=worker", f"crowdtui.workspace={workspace.id}"]}))[0].id
        assert second != first  # a fresh container
        await pilot.press("x")
        await wait_store(lambda: _has(actions, ("operator", "runtime.stop")), 90, what="runtime.stop")
        await wait_for(pilot, lambda: not agents.row("worker").running, 60, what="worker stopped")
    assert await actions() == [("operator", "runtime.start"), ("operator", "runtime.restart"),
                               ("operator", "runtime.stop")]
    assert (await store.get_agent("worker")).state == "stopped"  # recorded by the action or the follower


async def _has(actions, wanted) -> bool:
    return wanted in await actions()


@pytest.mark.docker
async def test_up_with_no_host_says_the_agent_has_no_hub_and_up_host_starts_one(workspace, store,
                                                                                  docker_client, agent_image):
    add_agent(workspace, "alpha", command="[sleep, infinity]")
    add_agent(workspace, "beta", command="[sleep, infinity]")
    from crowdtui.host import host_running

    assert not host_running(workspace)
    up = cli(workspace, "up", "alpha")
    assert up.returncode == 0, up.stderr
    assert "alpha: running" in up.stdout, up.stdout
    assert "no host runs for this workspace, so the agent(s) have no hub" in up.stderr, up.stderr
    assert "crowdtui up --host" in up.stderr
    assert not (workspace.ipc_dir("alpha") / "mcp.sock").exists()  # no door, as it said
    assert not host_running(workspace)

    up = cli(workspace, "up", "--host", "beta")
    pid = None
    try:
        assert up.returncode == 0, up.stderr
        m = re.search(r"started the host in the background \(pid (\d+); log (\S+)\)", up.stderr)
        assert m, up.stderr
        pid = int(m.group(1))
        assert host_running(workspace)
        # the background host opens both running agents' doors and serves them
        sock = workspace.ipc_dir("beta") / "mcp.sock"
        await wait_store(_there(sock), 60, what="beta's door from the background host")
        async with Client(unix_client(sock)) as c:
            names = {t.name for t in (await c.list_tools()).tools}
        assert DISPATCH_TOOLS <= names
        await wait_store(_there(workspace.ipc_dir("alpha") / "mcp.sock"), 60, what="alpha's door")
        # with a host running, `up` says nothing about hubs
        again = cli(workspace, "restart", "alpha")
        assert again.returncode == 0 and "no host" not in again.stderr and "background" not in again.stderr
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while host_running(workspace) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        cli(workspace, "down", "--all", "--rm")
    assert not host_running(workspace)
