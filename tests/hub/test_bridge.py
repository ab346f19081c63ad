"""crowd-mcp-bridge (stdio <-> the hub's socket) and crowd-agent, run as real processes on the host.

The same scripts run inside the agent image (tests in test_containers.py); here they
talk to a real hub over a real socket, which makes restarts easy to stage.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys

from crowdtui.hub.hub import Hub

from tests.waiting import wait_for

from .conftest import AGENT, BRIDGE

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(msg_id, name, **arguments):
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


class BridgeProc:
    def __init__(self, proc):
        self.proc = proc

    @classmethod
    async def start(cls, socket_path, wait="60"):
        env = {**os.environ, "CROWD_MCP_SOCKET": str(socket_path), "CROWD_BRIDGE_WAIT": wait, "CROWD_BRIDGE_QUIET": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BRIDGE), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=1 << 22,
        )
        return cls(proc)

    async def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def recv(self, timeout=20):
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line, "the bridge closed its output"
        return json.loads(line)

    async def close(self):
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def test_bridge_relays_a_session_as_the_door_owner(hub, store):
    path = await hub.open_door("worker")
    b = await BridgeProc.start(path)
    try:
        await b.send(INIT)
        assert (await b.recv())["result"]["serverInfo"]["name"] == "crowd"
        await b.send(INITIALIZED)
        await b.send(call(2, "send_message", to="lead", body="via the bridge"))
        reply = await b.recv()
        assert reply["id"] == 2 and reply["result"]["isError"] is False
    finally:
        await b.close()
    [m] = await store.inbox("lead")
    assert (m.sender, m.body) == ("worker", "via the bridge")


async def test_bridge_survives_a_hub_restart(workspace, store, definitions):
    hub = Hub(workspace, store, definitions=definitions.get)
    await hub.start()
    path = await hub.open_door("worker")
    b = await BridgeProc.start(path)
    try:
        await b.send(INIT)
        await b.recv()
        await b.send(INITIALIZED)
        await b.send(call(2, "send_message", to="lead", body="before"))
        assert (await b.recv())["id"] == 2
        await hub.stop()  # connections dropped, socket file gone
        await b.send(call(3, "send_message", to="lead", body="while the hub was away"))
        await asyncio.sleep(0.5)
        hub = Hub(workspace, store, definitions=definitions.get)
        await hub.start()
        await hub.open_door("worker")
        reply = await b.recv()  # the queued call, answered by the new hub after re-initialising
        assert reply["id"] == 3 and reply["result"]["isError"] is False
        await b.send(call(4, "get_messages", unread_only=False))
        reply = await b.recv()
        assert reply["id"] == 4 and reply["result"]["structuredContent"]["messages"] == []
        await b.send(call(5, "send_message", to="lead", body="after"))
        assert (await b.recv())["id"] == 5
    finally:
        await b.close()
        await hub.stop()
    assert [m.body for m in await store.inbox("lead")] == ["before", "while the hub was away", "after"]
    assert all(m.sender == "worker" for m in await store.inbox("lead"))


async def test_a_call_in_flight_when_the_hub_dies_gets_an_error_and_the_next_one_works(tmp_path):
    """A stand-in hub that dies after reading a request: the bridge must answer that request."""
    path = tmp_path / "mcp.sock"
    served = []

    async def dying_hub(reader, writer):
        line = await reader.readline()
        served.append(json.loads(line))
        if served[-1].get("method") == "initialize":
            writer.write((json.dumps({"jsonrpc": "2.0", "id": served[-1]["id"], "result": {"ok": len(served)}}) + "\n").encode())
            await writer.drain()
            line = await reader.readline()
            served.append(json.loads(line))
        if served[-1].get("method") == "notifications/initialized":
            served.append(json.loads(await reader.readline()))
        if len(served) > 4:  # second life: answer normally
            writer.write((json.dumps({"jsonrpc": "2.0", "id": served[-1]["id"], "result": {"answered": True}}) + "\n").encode())
            await writer.drain()
            await asyncio.sleep(1)
        writer.close()  # first life: die with the call in flight

    server = await asyncio.start_unix_server(dying_hub, path=str(path))
    b = await BridgeProc.start(path)
    try:
        await b.send(INIT)
        assert (await b.recv())["result"] == {"ok": 1}
        await b.send(INITIALIZED)
        await b.send(call(7, "send_message", to="x", body="y"))
        err = await b.recv()
        assert err["id"] == 7 and "went away while this call was in flight" in err["error"]["message"]
        await b.send(call(8, "get_messages"))
        ok = await b.recv()
        assert ok == {"jsonrpc": "2.0", "id": 8, "result": {"answered": True}}
    finally:
        await b.close()
        server.close()
    # the bridge replayed initialize (with its own id) before the next call, and swallowed the answer
    methods = [m.get("method") for m in served]
    assert methods == ["initialize", "notifications/initialized", "tools/call", "initialize", "notifications/initialized", "tools/call"]
    assert str(served[3]["id"]).startswith("crowd-bridge-replay")


async def test_requests_wait_for_a_hub_that_never_comes_then_fail_clearly(tmp_path):
    b = await BridgeProc.start(tmp_path / "nobody.sock", wait="1")
    try:
        await b.send(INIT)
        err = await b.recv(timeout=20)
        assert err["id"] == 1 and "did not answer" in err["error"]["message"]
    finally:
        await b.close()


async def test_echo_agent_answers_over_the_bridge(hub, store):
    path = await hub.open_door("reviewer")
    env = {**os.environ, "CROWD_MCP_SOCKET": str(path), "CROWD_MCP_BRIDGE": f"{sys.executable} {BRIDGE}",
           "CROWD_BRIDGE_QUIET": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(AGENT), "--role", "echo", "--poll", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    try:
        await store.send_message("lead", "reviewer", "ping", thread="t1")

        async def answered_and_read():
            replies = await store.inbox("lead")
            read = [m.read_at is not None for m in await store.inbox("reviewer")]
            return replies and read == [True] and replies
        replies = await wait_for(answered_and_read, 60, what="the echo agent to answer and mark the message read")
        assert [(m.sender, m.body, m.thread) for m in replies] == [("reviewer", "echo: ping", "t1")]
    finally:
        proc.terminate()
        output = (await proc.communicate())[0].decode()
    assert "< lead: ping" in output and "> lead: echo: ping" in output
