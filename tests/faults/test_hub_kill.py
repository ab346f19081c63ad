"""The hub killed with -9 under load: 20 agents' MCP clients (crowd-mcp-bridge, the program
agents run, as host processes on their real doors) call send_message and get_messages while
a `crowdtui hub` process is SIGKILLed and a new one started. Every send the hub acknowledged
is in the store, every bridge reconnects by itself and its calls resume.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from qms import Store

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "docker" / "bin" / "crowd-mcp-bridge"
AGENTS = [f"a{i:02d}" for i in range(20)]
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fault", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


async def start_hub(ws) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), "hub",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO)
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert b"serving" in line, line
    return proc


class Agent:
    """One agent's MCP client through the bridge: sequential calls, what was acknowledged."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path
        self.acked: list[str] = []  # bodies of sends the hub answered with success
        self.unsure: list[str] = []  # sends in flight when the hub died ("may or may not")
        self.reads = 0
        self.done_at: dict[str, int] = {}  # phase -> calls answered
        self.answered = 0
        self.proc = None

    async def open(self) -> None:
        env = {**os.environ, "CROWD_MCP_SOCKET": str(self.path), "CROWD_BRIDGE_WAIT": "60",
               "CROWD_BRIDGE_QUIET": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BRIDGE), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env, limit=1 << 22)
        await self.rpc(INIT)
        self.proc.stdin.write((json.dumps(INITIALIZED) + "\n").encode())

    async def rpc(self, msg: dict) -> dict:
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 90)
        assert line, f"{self.name}'s bridge closed its output"
        return json.loads(line)

    async def work(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 2:
                body = f"{self.name}-{n}"
                to = AGENTS[(AGENTS.index(self.name) + n) % len(AGENTS)]
                call = {"name": "send_message", "arguments": {"to": to, "body": body}}
            else:
                body = None
                call = {"name": "get_messages", "arguments": {"limit": 5}}
            reply = await self.rpc({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": call})
            assert reply.get("id") == n, reply
            ok = "result" in reply and not reply["result"].get("isError")
            if ok:
                self.answered += 1
                if body:
                    self.acked.append(body)
                else:
                    self.reads += 1
            elif body:
                self.unsure.append(body)
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.mark.timeout(150)
async def test_hub_killed_under_load_loses_no_acknowledged_call_and_bridges_resume(workspace):
    from crowdtui.roster import load_roster, sync_roster

    for name in AGENTS:
        (workspace.agents_dir / name).mkdir(parents=True)
        (workspace.agents_dir / name / "AGENT.md").write_text(f"---\nname: {name}\n---\nA caller.\n")
    store = await Store.open(workspace.db_path)
    await sync_roster(store, load_roster(workspace))
    for name in AGENTS:
        await store.set_agent_state(name, "running")  # the hub opens doors for running agents
    hubs = [await start_hub(workspace)]
    agents = [Agent(n, workspace.ipc_dir(n) / "mcp.sock") for n in AGENTS]
    stop = asyncio.Event()
    try:
        for a in agents:
            await a.open()
        workers = [asyncio.create_task(a.work(stop)) for a in agents]
        await asyncio.sleep(3)  # load
        before = {a.name: a.answered for a in agents}
        assert all(before.values()), before
        hubs[0].send_signal(signal.SIGKILL)
        await hubs[0].wait()
        hubs.append(await start_hub(workspace))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # every client's calls resume through its bridge
            if all(a.answered >= before[a.name] + 4 for a in agents):
                break
            for w in workers:
                if w.done():
                    w.result()  # a client failed: show why
            await asyncio.sleep(0.2)
        stuck = [a.name for a in agents if a.answered < before[a.name] + 4]
        assert not stuck, f"calls did not resume for {stuck}"
        stop.set()
        await asyncio.gather(*workers)
    finally:
        stop.set()
        for a in agents:
            await a.close()
        for h in hubs:
            if h.returncode is None:
                h.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(h.wait(), 20)
                except asyncio.TimeoutError:
                    h.kill()
                    await h.wait()
    stored = {r["body"] for r in await store.query("SELECT body FROM messages")}
    acked = [b for a in agents for b in a.acked]
    lost = [b for b in acked if b not in stored]
    assert not lost, f"{len(lost)} acknowledged sends lost: {lost[:5]}"
    assert len(acked) > 100  # there was load on both sides of the kill
    unsure = [b for a in agents for b in a.unsure]
    assert len(unsure) <= len(agents)  # at most the one call each had in flight
    await store.close()
