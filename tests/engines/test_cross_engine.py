"""One host drives an agent on the local engine and one on the tcp+TLS engine; the remote one
reaches the hub through its engine's relay, and the two talk through the hub.

Real parts: the host assembly (``crowdtui.host.Host``, as ``crowdtui serve`` and the console run
it) with its hub and relay door on the host side of the engine's veth pair, the real runtime
starting both containers, the relay container the runtime starts on the remote engine (with the
engine's own credential), and crowd-mcp-bridge inside each agent container.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.runtime.containers import Runtime
from crowdtui.workspace import load_workspace
from tests.relay.conftest import bridge_session
from tests.waiting import wait_for

from .conftest import stop_host, write_agent

pytestmark = pytest.mark.docker


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _call(i: int, tool: str, **arguments) -> dict:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def _messages(answer: dict) -> list[tuple[str, str]]:
    assert "error" not in answer, answer
    result = answer["result"]
    data = result.get("structuredContent") or json.loads(result["content"][0]["text"])
    return [(m["sender"], m["body"]) for m in data["messages"]]


async def test_agents_on_two_engines_talk_through_the_relay(far_workspace, far_engine, docker_client, agent_image):
    from crowdtui.host import Host, HostOptions
    from crowdtui.runtime.relay_container import agent_ipc_volume_name, find_relay, relay_volume_name

    ws = far_workspace
    cfg = ws.root / "crowd.toml"
    port = _free_port(far_engine.host_ip)
    # the test engine runs without iptables (no NAT from its bridge): its relay joins the
    # engine's host network, as a relay on a real machine's bridge reaches out through NAT
    text = cfg.read_text().rstrip("\n") + '\nrelay_network = "host"\n'
    assert text.rstrip().endswith('labels = ["big"]\nrelay_network = "host"')
    assert text.count("\n[hub]\n") == 1
    cfg.write_text(text.replace("\n[hub]\n", f'\n[hub]\nrelay_host = "{far_engine.host_ip}"\nrelay_port = {port}\n'))
    write_agent(ws, "near", "command: [sh]\n", "You are near.\n")
    write_agent(ws, "far1", "engine: far\ncommand: [sh]\n", "You are far away.\n")
    ws = load_workspace(ws.root)
    roster = load_roster(ws)
    runtime = Runtime(ws, docker_client)
    host = Host(ws, options=HostOptions(dispatch=False), runtime=runtime)
    await host.start()
    try:
        hub = host.hub
        assert hub.relay is not None and tuple(hub.relay.address) == (far_engine.host_ip, port)
        assert runtime.door is not None and runtime.door.hub_address == f"{far_engine.host_ip}:{port}"
        near = await lifecycle.start(runtime, host.store, roster.get("near"), actor="operator")
        far = await lifecycle.start(runtime, host.store, roster.get("far1"), actor="operator")
        assert (near.engine, far.engine) == ("local", "far")
        # the relay runs on the far engine, and the hub trusts it for far1 only
        remote = far_engine.local_client()
        try:
            relay = find_relay(remote, ws, "far")
            assert relay is not None and relay.status == "running"
            on_far = remote.containers.get(far.container_id)
            ipc = [m for m in on_far.attrs["Mounts"] if m["Destination"] == "/run/crowd"]
            assert [m["Name"] for m in ipc] == [agent_ipc_volume_name(ws, "far1")]
        finally:
            remote.close()
        assert await hub.relay.placed("far") == {"far1"}
        assert await hub.relay.placed("local") == set()
        await wait_for(lambda: "far1" in hub.doors and "near" in hub.doors, 30, "both doors open")
        far_c = await runtime.container("far1")
        near_c = await runtime.container("near")
        # far1 (through the relay) writes to near; near (its local door) answers
        a = await asyncio.to_thread(bridge_session, far_c, _call(2, "send_message", to="near", body="from far"))
        assert "error" not in a[-1], a
        b = await asyncio.to_thread(bridge_session, near_c, _call(2, "get_messages", unread_only=False),
                                    _call(3, "send_message", to="far1", body="from near"))
        by_id = {x.get("id"): x for x in b}
        assert _messages(by_id[2]) == [("far1", "from far")]
        assert "error" not in by_id[3], by_id[3]
        c = await asyncio.to_thread(bridge_session, far_c, _call(2, "get_messages", unread_only=False))
        assert _messages({x.get("id"): x for x in c}[2]) == [("near", "from near")]
        # far1 cannot act as near: a `from` claim is refused; its /run/crowd holds only its own socket
        d = await asyncio.to_thread(bridge_session, far_c,
                                    _call(2, "send_message", to="near", body="as near?", **{"from": "near"}))
        answer = {x.get("id"): x for x in d}[2]
        assert "error" in answer and "has no parameter" in answer["error"]["message"]
        listing = await asyncio.to_thread(far_c.exec_run, ["sh", "-c", "ls -A /run/crowd"], user="1000:1000")
        assert listing.output.decode().split() == ["mcp.sock"]
        assert [(m.sender, m.body) for m in await host.store.inbox("near")] == [("far1", "from far")]
        # the calls are audited as coming through the relay of engine far
        await hub.audit.drain()
        calls = [e for e in await host.store.events_after(0, limit=10000, kinds=["hub.call"])
                 if e.subject == "send_message"]
        assert {(e.actor, e.detail.get("via")) for e in calls} >= {("far1", "relay:far")}
        assert all(e.detail.get("via") != "relay:far" for e in calls if e.actor == "near")
        # whoever holds far's relay credential speaks for far1 only: a stream naming near is refused
        from crowdtui.hub import relay_wire as wire
        from crowdtui.hub.relay_credentials import engine_credential
        from tests.relay.test_relay_trust import HandRelay

        hand = await HandRelay.connect(hub.relay.address, engine_credential(ws, "far"), ws.root / "hand")
        try:
            await hand.send(wire.control(wire.HELLO, engine="far", version=1))
            await hand.expect(wire.WELCOME)
            _, _, served = await hand.expect(wire.SERVE)
            assert list(json.loads(served)["agents"]) == ["far1"]
            await hand.send(wire.control(wire.OPEN, 1, agent="near", door="mcp"))
            _, sid, payload = await hand.expect(wire.REFUSED)
            assert sid == 1 and "not placed on engine" in json.loads(payload)["reason"]
        finally:
            hand.close()
        # retiring far1 removes its socket volume on the far engine
        await lifecycle.stop(runtime, host.store, "far1", actor="operator", timeout=2)
        assert await runtime.remove("far1")
        remote = far_engine.local_client()
        try:
            assert agent_ipc_volume_name(ws, "far1") not in {v.name for v in remote.volumes.list()}
        finally:
            remote.close()
        # `engine rm`: the engine's credential is revoked and its relay and relay volume removed
        from crowdtui.cli import main

        assert engine_credential(ws, "far") is not None
        assert await asyncio.to_thread(main, ["engine", "rm", "--json", "-w", str(ws.root), "far", "--force"]) == 0
        assert engine_credential(ws, "far") is None
        remote = far_engine.local_client()
        try:
            assert find_relay(remote, ws, "far") is None
            assert relay_volume_name(ws, "far") not in {v.name for v in remote.volumes.list()}
        finally:
            remote.close()
    finally:
        await stop_host(host, runtime, far_engine, ws)
