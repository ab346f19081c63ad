"""The door's lean MCP session (crowdtui.hub.door_session) against the SDK's own dispatcher.

The same MCP server is served twice on unix sockets: once by the door (``serve_connection``:
``DoorSession`` running the SDK's request kernel), once by the SDK's own ``Server.run``
over a plain newline-JSON stream adapter (``bench.hub.sdk_session``: the SDK's dispatcher,
memory streams and era replay; the hub bench's "MCP SDK alone" row). The same raw lines go to both, in both protocol eras; every answer must be the
same bytes, a cancelled request must get no answer from either, and the real SDK client
must work through a hub door in both eras.
"""

from __future__ import annotations

import asyncio
import json

import mcp_types as types
from mcp import Client
from mcp.server.mcpserver import MCPServer

from bench.hub import sdk_session  # the SDK's own session over newline JSON (no crowdtui code)
from crowdtui.hub.unix_transport import serve_connection, unix_client
from tests.hub.conftest import structured

ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}


def bare_server() -> MCPServer:
    server = MCPServer("bare", log_level="WARNING")

    @server.tool()
    async def echo(text: str, times: int = 1) -> dict:
        return {"text": text * times}

    @server.tool()
    async def fail() -> str:
        raise ValueError("this tool fails")

    @server.tool()
    async def slow(seconds: float = 30) -> str:
        await asyncio.sleep(seconds)
        return "late"

    return server


async def exchange(path, lines: list[dict], until_id) -> dict:
    """Send ``lines`` (a dict, or a float: sleep that long), read answers until ``until_id``
    is answered; return the raw answer lines by id (notifications under their method)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    for item in lines:
        if isinstance(item, float):
            await asyncio.sleep(item)
            continue
        writer.write((json.dumps(item) + "\n").encode())
        await writer.drain()
    answers: dict = {}
    while until_id not in answers:
        raw = await asyncio.wait_for(reader.readline(), 20)
        assert raw, f"the connection closed before {until_id} was answered: {answers}"
        obj = json.loads(raw)
        answers[obj.get("id", obj.get("method"))] = raw
    writer.close()
    return answers


def call(i, name, args, meta=None) -> dict:
    params = {"name": name, "arguments": args}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}


LEGACY = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    call(3, "echo", {"text": "hé \u2028 \"q\"", "times": 2}),
    call(4, "echo", {"text": "x", "times": "many"}),  # wrong type: the SDK's validation error
    call(5, "nope", {}),
    call(6, "fail", {}),
    {"jsonrpc": "2.0", "id": 7, "method": "ping"},
    {"jsonrpc": "2.0", "id": 8, "method": "no/such/method", "params": {}},
    call(9, "echo", {"text": "m"}, meta=ENVELOPE),  # another era's request on this connection
    {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"arguments": {}}},  # no name
    call("s1", "echo", {"text": "string id"}),
    call(11, "slow", {"seconds": 30}),
    0.2,
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11, "reason": "test"}},
    {"jsonrpc": "2.0", "method": "notifications/unknown", "params": {}},
    {"jsonrpc": "2.0", "id": 99, "method": "ping"},
]

MODERN = [
    {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": ENVELOPE}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": ENVELOPE}},
    call(3, "echo", {"text": "modern"}, meta=ENVELOPE),
    call(4, "echo", {"text": 1}, meta=ENVELOPE),
    call(5, "fail", {}, meta=ENVELOPE),
    call(6, "echo", {"text": "no envelope"}),  # a request without the envelope on a modern connection
    {"jsonrpc": "2.0", "id": 7, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    call(8, "slow", {"seconds": 30}, meta=ENVELOPE),
    0.2,
    {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}},
    {"jsonrpc": "2.0", "id": 99, "method": "tools/list", "params": {"_meta": ENVELOPE}},
]


async def _both(tmp_path, lines):
    server = bare_server()
    door_path, sdk_path = tmp_path / "door.sock", tmp_path / "sdk.sock"
    door = await asyncio.start_unix_server(lambda r, w: serve_connection(server, "a0", r, w), path=str(door_path))
    sdk = await asyncio.start_unix_server(lambda r, w: sdk_session(server, r, w), path=str(sdk_path))
    try:
        return await exchange(door_path, lines, 99), await exchange(sdk_path, lines, 99)
    finally:
        door.close()
        sdk.close()


async def test_door_session_answers_as_the_sdk_dispatcher_does_in_the_handshake_era(tmp_path):
    ours, sdk = await _both(tmp_path, LEGACY)
    assert 11 not in ours and 11 not in sdk  # cancelled: never answered
    assert set(ours) == set(sdk) == {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "s1", 99}
    for key in sdk:
        assert ours[key] == sdk[key], f"answer to {key!r} differs:\n door: {ours[key]!r}\n sdk:  {sdk[key]!r}"
    assert json.loads(json.loads(ours[3])["result"]["content"][0]["text"]) == {"text": "hé \u2028 \"q\"" * 2}
    assert json.loads(ours[9])["error"]["code"] == types.INVALID_REQUEST


async def test_door_session_answers_as_the_sdk_dispatcher_does_in_the_2026_era(tmp_path):
    ours, sdk = await _both(tmp_path, MODERN)
    assert 8 not in ours and 8 not in sdk
    assert set(ours) == set(sdk) == {1, 2, 3, 4, 5, 6, 7, 99}
    for key in sdk:
        assert ours[key] == sdk[key], f"answer to {key!r} differs:\n door: {ours[key]!r}\n sdk:  {sdk[key]!r}"
    assert json.loads(ours[7])["error"]["code"] == types.UNSUPPORTED_PROTOCOL_VERSION


async def test_a_request_running_when_the_peer_stops_sending_is_answered_connection_closed(tmp_path):
    """As the SDK's dispatcher: the end of the peer's input ends the session; a request
    still running is answered -32000 on the way out."""
    server = bare_server()
    path = tmp_path / "door.sock"
    door = await asyncio.start_unix_server(lambda r, w: serve_connection(server, "a0", r, w), path=str(path))
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        for item in LEGACY[:2] + [call(5, "slow", {"seconds": 30})]:
            writer.write((json.dumps(item) + "\n").encode())
        await writer.drain()
        assert json.loads(await asyncio.wait_for(reader.readline(), 20))["id"] == 1
        await asyncio.sleep(0.2)
        writer.write_eof()
        last = json.loads(await asyncio.wait_for(reader.readline(), 20))
        assert last == {"jsonrpc": "2.0", "id": 5, "error": {"code": -32000, "message": "Connection closed"}}
        assert await asyncio.wait_for(reader.read(), 20) == b""
        writer.close()
    finally:
        door.close()


async def test_the_real_sdk_client_uses_a_hub_door_in_both_eras(hub):
    path = await hub.open_door("lead")
    for mode in ("legacy", "auto"):
        async with Client(unix_client(path), mode=mode) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"send_message", "get_messages"} <= names
            sent = await c.call_tool("send_message", {"to": "lead", "body": f"hello in {mode}"})
            assert structured(sent)["sent"] == 1
            inbox = structured(await c.call_tool("get_messages", {"limit": 50}))
            assert f"hello in {mode}" in [m["body"] for m in inbox["messages"]]
            try:
                await c.call_tool("get_messages", {"limit": "lots"})
            except Exception as exc:  # refused by the hub's validation, as an MCP error
                assert "wrong arguments for get_messages" in str(exc)
            else:
                raise AssertionError("an invalid argument was accepted")


async def test_requests_cancelled_at_once_leave_nothing_behind(tmp_path):
    """A peer that sends a request and its cancellation together, many times: none is
    answered, and the session keeps no record of them."""
    from crowdtui.hub import door_session

    sessions = []
    original = door_session.DoorSession.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        sessions.append(self)

    server = bare_server()
    path = tmp_path / "door.sock"
    door_session.DoorSession.__init__ = keep
    door = await asyncio.start_unix_server(lambda r, w: serve_connection(server, "a0", r, w), path=str(path))
    try:
        lines = LEGACY[:2]
        for k in range(200):
            lines = lines + [call(1000 + k, "slow", {"seconds": 30}),
                             {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1000 + k}}]
        answers = await exchange(path, lines + [{"jsonrpc": "2.0", "id": 99, "method": "ping"}], 99)
        assert set(answers) == {1, 99}
        assert sessions and not sessions[0]._running
    finally:
        door_session.DoorSession.__init__ = original
        door.close()
