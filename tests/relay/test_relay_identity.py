"""Agents on a relayed engine reach the hub through their own socket only, and act as themselves.

Real parts: the hub, the relay container (hardened, on the local engine, named volumes), agent
containers with no network and only their own IPC volume, crowd-mcp-bridge inside them, and the
MCP client library on the agent-side socket.
"""

from __future__ import annotations

import asyncio
import json
import socket

from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.hub.unix_transport import unix_client
from tests.waiting import wait_for

from .conftest import ENGINE, bridge_session, run_agent


def structured(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


async def events(store, kind):
    return await store.events_after(0, limit=10000, kinds=[kind])


async def test_two_agents_through_one_relay_each_act_as_themselves(relayed):
    r = relayed
    alpha = await r.socket_ready("alpha")
    beta = await r.socket_ready("beta")
    assert len(r.hub.relay.links) == 1  # both agents' connections ride one link
    async with Client(unix_client(alpha)) as a, Client(unix_client(beta)) as b:
        sent = structured(await a.call_tool("send_message", {"to": "beta", "body": "from alpha"}))
        assert sent["recipients"] == ["beta"]
        await b.call_tool("send_message", {"to": "alpha", "body": "from beta"})
        got_b = structured(await b.call_tool("get_messages", {"unread_only": False}))
        got_a = structured(await a.call_tool("get_messages", {"unread_only": False}))
    assert [(m["sender"], m["body"]) for m in got_b["messages"]] == [("alpha", "from alpha")]
    assert [(m["sender"], m["body"]) for m in got_a["messages"]] == [("beta", "from beta")]
    await r.hub.audit.drain()
    calls = [e for e in await events(r.store, "hub.call") if e.subject == "send_message"]
    assert {(e.actor, e.detail["via"]) for e in calls} == {("alpha", f"relay:{ENGINE}"), ("beta", f"relay:{ENGINE}")}
    connected = await events(r.store, "relay.connected")
    assert [e.detail["engine"] for e in connected] == [ENGINE]


async def test_an_agent_container_has_only_its_own_door_and_cannot_act_as_another(relayed, agent_image):
    r = relayed
    await r.socket_ready("alpha")
    await r.socket_ready("beta")
    alpha = await asyncio.to_thread(run_agent, r.client, r.workspace, agent_image, "alpha", r.volumes["alpha"])
    listing = await asyncio.to_thread(alpha.exec_run, ["sh", "-c", "ls -A /run/crowd; ls /run/crowd/.. ; id -u"],
                                      user="1000:1000")
    seen = listing.output.decode().split()
    assert "mcp.sock" in seen and "beta" not in seen and "credential" not in seen and "agents" not in seen
    # whatever it sends, through the only door it has, it is alpha
    answers = await asyncio.to_thread(
        bridge_session, alpha,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "send_message", "arguments": {"to": "gamma", "body": "as beta?", "from": "beta"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "send_message", "arguments": {"to": "gamma", "body": "honest"}}},
    )
    by_id = {a.get("id"): a for a in answers}
    assert "error" in by_id[2] and "has no parameter" in by_id[2]["error"]["message"]
    assert "error" not in by_id[3], by_id[3]
    inbox = await r.store.inbox("gamma")
    assert [(m.sender, m.body) for m in inbox] == [("alpha", "honest")]
    # no network of its own: the hub and the relay's link are out of reach
    probe = await asyncio.to_thread(
        alpha.exec_run, ["python3", "-c", f"import socket; socket.create_connection(('{r.host}', {r.port}), 3)"],
        user="1000:1000")
    assert probe.exit_code != 0


async def test_the_egress_door_is_relayed_too(relayed):
    r = relayed
    path = await r.socket_ready("beta", "egress")
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(f"GET http://127.0.0.1:{r.outside}/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"hello /x"), answer
    allowed = await events(r.store, "egress.allowed")
    assert [(e.subject, e.detail.get("via")) for e in allowed] == [("beta", f"relay:{ENGINE}")]
    assert not r.socket("alpha", "egress").exists()  # alpha has no egress list: no egress socket


async def test_a_bad_request_on_one_stream_leaves_the_others_alone(relayed):
    r = relayed
    alpha = await r.socket_ready("alpha")
    beta = await r.socket_ready("beta")
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(alpha))
    # over the hub's request limit: an error, not a crash (sent from a thread: the hub shares this loop)
    await asyncio.to_thread(raw.sendall, b"x" * (2 * 1024 * 1024) + b"\n")
    raw.settimeout(30)
    first = await asyncio.to_thread(raw.recv, 65536)
    raw.close()
    assert b"request larger than" in first
    async with Client(unix_client(beta)) as b:
        with_error = None
        try:
            await b.call_tool("send_message", {"to": "alpha", "body": "still here", "as": "alpha"})
        except MCPError as exc:
            with_error = exc
        assert with_error is not None
        await b.call_tool("send_message", {"to": "alpha", "body": "still here"})
    assert [(m.sender, m.body) for m in await r.store.inbox("alpha")] == [("beta", "still here")]


PROXY_GET = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), 10)
s.sendall(f"GET http://127.0.0.1:{sys.argv[1]}/from-container HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n".encode())
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode())
"""


async def test_an_agent_containers_egress_forwarder_reaches_the_proxy_through_the_relay(relayed, agent_image):
    r = relayed
    await r.socket_ready("beta", "egress")
    beta = await asyncio.to_thread(run_agent, r.client, r.workspace, agent_image, "beta", r.volumes["beta"],
                                   ("crowd-entry", "sleep", "600"), {"CROWD_EGRESS": "/run/crowd/egress.sock"})

    async def fetched():
        result = await asyncio.to_thread(beta.exec_run, ["python3", "-c", PROXY_GET, str(r.outside)], user="1000:1000")
        return result.output.decode(errors="replace") if result.exit_code == 0 else None

    answer = await wait_for(fetched, 30, "beta's forwarder to answer")
    assert answer.startswith("HTTP/1.0 200") and answer.endswith("hello /from-container"), answer
    allowed = await r.store.events_after(0, limit=100, kinds=["egress.allowed"])
    assert [(e.subject, e.detail.get("via")) for e in allowed] == [("beta", f"relay:{ENGINE}")]
