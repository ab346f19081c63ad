"""`crowdtui hub` in the foreground and `crowdtui token issue|ls|revoke`, through the real entry point."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from mcp import Client

from crowdtui.hub.unix_transport import unix_client

from tests.waiting import wait_for

from .conftest import REPO, structured, write_roster


def cli(workspace, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_token_issue_ls_revoke(workspace):
    write_roster(workspace, {"remote": "name: remote\ndescription: works elsewhere\n"})
    issued = cli(workspace, "token", "issue", "remote")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert token.startswith("crowd_") and len(token) > 30 and "shown once" in issued.stderr
    listed = cli(workspace, "token", "ls", "remote")
    assert listed.returncode == 0 and "valid" in listed.stdout and token not in listed.stdout
    assert token[:12] in listed.stdout
    revoked = cli(workspace, "token", "revoke", "remote")
    assert revoked.returncode == 0 and "revoked 1 token" in revoked.stdout
    again = cli(workspace, "token", "revoke", "remote")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "no valid tokens of remote" in again.stderr
    ghost = cli(workspace, "token", "issue", "ghost")
    assert ghost.returncode == 1 and "no agent named 'ghost'" in ghost.stderr
    assert "revoked" in cli(workspace, "token", "ls", "remote").stdout


async def test_hub_runs_in_the_foreground_follows_agents_and_is_one_per_workspace(workspace):
    from qms import Store

    write_roster(workspace, {"alpha": "name: alpha\ndescription: first\n"})
    proc = subprocess.Popen([sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "hub"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = await asyncio.to_thread(proc.stdout.readline)
        assert f"serving {workspace.root} (pid {proc.pid})" in line
        second = cli(workspace, "hub", timeout=30)
        assert second.returncode == 1
        assert f"already running (pid {proc.pid}" in second.stderr and second.stderr.count("\n") == 1
        # an agent that starts gets its door (here its state is recorded as the runtime would)
        store = await Store.open(workspace.db_path)
        try:
            await store.set_agent_state("alpha", "running", actor="runtime")
            sock = workspace.ipc_dir("alpha") / "mcp.sock"
            deadline = time.monotonic() + 30
            while not sock.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            async with Client(unix_client(sock)) as c:
                r = structured(await c.call_tool("send_message", {"to": "operator", "body": "hello from alpha"}))
            assert r["recipients"] == ["operator"]
            assert [m.sender for m in await store.inbox("operator")] == ["alpha"]
            # a definition added while the hub runs is registered, and gets a door when it runs
            write_roster(workspace, {"beta": "name: beta\ndescription: second\n"})

            async def registered():
                return await store.get_agent("beta")
            await wait_for(registered, 30, what="beta to be registered from its new AGENT.md")
            await store.set_agent_state("beta", "running", actor="runtime")
            await wait_for(lambda: _exists(workspace.ipc_dir("beta") / "mcp.sock"), 30, what="beta's door")
            await store.set_agent_state("alpha", "exited", actor="runtime")
            deadline = time.monotonic() + 30
            while sock.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not sock.exists()
        finally:
            await store.close()
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
        # the lock is free again
        assert not (workspace.crowd_dir / "run" / "hub.lock").read_text().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _exists(path) -> bool:
    return path.exists()


async def test_a_hub_killed_with_sigkill_leaves_nothing_that_blocks_the_next_one(workspace):
    from qms import Store

    write_roster(workspace, {"alpha": "name: alpha\ndescription: first\n"})
    store = await Store.open(workspace.db_path)
    try:
        from crowdtui.roster import load_roster, sync_roster

        await sync_roster(store, load_roster(workspace))
        await store.set_agent_state("alpha", "running", actor="runtime")
    finally:
        await store.close()
    sock = workspace.ipc_dir("alpha") / "mcp.sock"
    procs = []
    try:
        for round_no in range(2):
            proc = subprocess.Popen([sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "hub"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
            procs.append(proc)
            line = await asyncio.to_thread(proc.stdout.readline)
            assert f"(pid {proc.pid})" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
            async with Client(unix_client(sock)) as c:
                r = structured(await c.call_tool("send_message", {"to": "operator", "body": f"round {round_no}"}))
            assert r["sent"] == 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert sock.exists()  # the dead hub's stale socket; the next hub replaces it
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


async def test_the_hub_alone_follows_container_states_and_restarts_a_crashed_agent(workspace, agent_image):
    """With only `crowdtui hub` running (no console, no serve), a container killed under an
    agent with `restart: on-failure` is seen as crashed and started again by the supervisor."""
    import docker
    from qms import Store

    write_roster(workspace, {"alpha": "name: alpha\ndescription: first\ncommand: [sleep, infinity]\n"
                                      "restart: on-failure\n"})
    up = cli(workspace, "up", "alpha")
    assert up.returncode == 0, up.stderr
    proc = subprocess.Popen([sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "hub"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    client = docker.from_env()
    store = await Store.open(workspace.db_path)
    try:
        await asyncio.to_thread(proc.stdout.readline)
        [container] = client.containers.list(filters={"label": ["crowdtui.agent=alpha", f"crowdtui.workspace={workspace.id}"]})
        before = await store.last_event_id()
        await asyncio.sleep(1.0)  # the hub's follower is subscribed by now (it reconciles first)
        container.kill()

        async def restarted():
            events = await store.events_after(before, limit=1000)
            return [e for e in events if e.kind == "agent.restarted" and e.subject == "alpha"]
        [event] = await wait_for(restarted, 60, what="the hub's supervisor to restart alpha")
        assert "137" in str(event.detail) or "crash" in str(event.detail), event.detail
        states = [e.detail.get("state") for e in await store.events_after(before, kinds=["agent.state"], limit=1000)
                  if e.subject == "alpha"]
        assert "crashed" in states, states
        running = client.containers.list(filters={"label": ["crowdtui.agent=alpha", f"crowdtui.workspace={workspace.id}"]})
        assert len(running) == 1
    finally:
        await store.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.communicate, timeout=30)
        client.close()
