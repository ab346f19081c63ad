"""What the hub trusts a relay for: only its own engine's agents, only with its current credential;
and a relay that loses the hub comes back by itself.

A relay written by hand here (real TLS, the real wire format) says what a hostile or stale
relay would; the real relay container is used for the reconnect.
"""

from __future__ import annotations

import asyncio
import json
import ssl

import pytest
from mcp import Client

from crowdtui.hub import relay_wire as wire
from crowdtui.hub.relay_credentials import engine_credential, issue_engine_credential, revoke_engine_credential
from crowdtui.hub.unix_transport import unix_client
from crowdtui.workspace import init_workspace
from tests.waiting import wait_for

from .conftest import ENGINE, OTHER, start_hub


class HandRelay:
    """A relay on the host that sends whatever it is told to."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address, credential, folder, hub_cert_pem: bytes | None = None) -> "HandRelay":
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cert.pem").write_bytes(credential.cert_pem)
        (folder / "key.pem").write_bytes(credential.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=(hub_cert_pem or credential.hub_cert_pem).decode())
        ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        reader, writer = await asyncio.open_connection(address[0], address[1], ssl=ctx,
                                                       server_hostname="crowdtui-hub")
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def next(self, timeout: float = 20.0):
        """The next frame, or None when the hub closed the link."""
        try:
            return await asyncio.wait_for(wire.read_frame(self.reader), timeout)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return None

    async def expect(self, kind: int, timeout: float = 20.0):
        while True:
            got = await self.next(timeout)
            assert got is not None, f"the hub closed the link while {wire.NAMES[kind]} was expected"
            if got[0] == kind:
                return got
            assert got[0] in (wire.SERVE, wire.CREDIT, wire.PONG), f"unexpected {wire.NAMES[got[0]]}: {got}"

    async def mcp_call(self, sid: int, agent: str, tool: str, arguments: dict) -> dict:
        """Open a stream for ``agent`` and make one MCP tool call on it; the JSON-RPC answer."""
        await self.send(wire.control(wire.OPEN, sid, agent=agent, door="mcp"))
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "hand", "version": "1"}}},
                 {"jsonrpc": "2.0", "method": "notifications/initialized"},
                 {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}]
        await self.send(wire.frame(wire.DATA, sid, "".join(json.dumps(x) + "\n" for x in lines).encode()))
        buf = b""
        while True:
            kind, got_sid, payload = await self.expect(wire.DATA)
            assert got_sid == sid
            buf += payload
            for line in buf.split(b"\n"):
                if line.strip():
                    msg = json.loads(line)
                    if msg.get("id") == 2:
                        return msg

    def close(self) -> None:
        self.writer.transport.abort()


async def refusals(store) -> list:
    return await store.events_after(0, limit=1000, kinds=["relay.refused"])


async def test_a_relay_cannot_speak_for_an_agent_not_placed_on_its_engine(local_hub, store, workspace, tmp_path):
    credential = issue_engine_credential(workspace, OTHER)
    relay = await HandRelay.connect(local_hub.relay.address, credential, tmp_path / "cred")
    await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
    await relay.expect(wire.WELCOME)
    _, _, served = await relay.expect(wire.SERVE)
    assert json.loads(served)["agents"] == {"gamma": ["mcp", "egress"]}  # only what is placed on its engine

    await relay.send(wire.control(wire.OPEN, 1, agent="alpha", door="mcp"))
    kind, sid, payload = await relay.expect(wire.REFUSED)
    assert sid == 1 and "not placed on engine" in json.loads(payload)["reason"]
    await relay.send(wire.frame(wire.DATA, 1, b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n'))  # dropped

    answer = await relay.mcp_call(3, "gamma", "send_message", {"to": "alpha", "body": "hello from gamma"})
    assert "error" not in answer, answer
    # the same stream naming another agent: the link ends, nothing runs as alpha
    await relay.send(wire.control(wire.OPEN, 3, agent="alpha", door="mcp"))
    await relay.send(wire.frame(wire.DATA, 3, b'{"jsonrpc":"2.0","id":9,"method":"tools/list"}\n'))
    while (got := await relay.next()) is not None:
        assert got[0] != wire.DATA or b'"id":9' not in got[2]
    relay.close()

    inbox = await store.inbox("alpha")
    assert [(m.sender, m.body) for m in inbox] == [("gamma", "hello from gamma")]
    await local_hub.audit.drain()
    [call] = [e for e in await store.events_after(0, limit=1000, kinds=["hub.call"]) if e.subject == "send_message"]
    assert call.actor == "gamma" and call.detail["via"] == f"relay:{OTHER}"
    seen = await wait_for(lambda: _reasons(store), 10, "both refusals recorded")
    assert {"not_on_engine", "protocol"} <= seen
    [not_placed] = [e for e in await refusals(store) if e.detail["reason"] == "not_on_engine"]
    assert not_placed.subject == "alpha" and not_placed.detail["engine"] == OTHER


async def _reasons(store):
    reasons = {e.detail["reason"] for e in await refusals(store)}
    return reasons if {"not_on_engine", "protocol"} <= reasons else None


async def test_wrong_revoked_or_replaced_credentials_are_refused(local_hub, store, workspace, tmp_path):
    address = local_hub.relay.address
    hub_pem = engine_credential(workspace, OTHER, issue=True).hub_cert_pem

    # a certificate from another workspace's CA (same engine name): the TLS handshake fails
    elsewhere, _ = init_workspace(tmp_path / "elsewhere", sample=False)
    foreign = issue_engine_credential(elsewhere, OTHER)
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        relay = await HandRelay.connect(address, foreign, tmp_path / "foreign", hub_cert_pem=hub_pem)
        await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
        assert await relay.next() is None
        raise ConnectionError("refused")

    # replaced: the engine's old certificate no longer works, the new one does
    old = engine_credential(workspace, OTHER)
    new = issue_engine_credential(workspace, OTHER)
    relay = await HandRelay.connect(address, old, tmp_path / "old")
    kind, _, payload = await relay.expect(wire.REFUSE)
    assert "not the one issued" in json.loads(payload)["reason"]
    relay.close()
    relay = await HandRelay.connect(address, new, tmp_path / "new")
    await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
    await relay.expect(wire.WELCOME)
    relay.close()

    # a valid certificate whose HELLO claims another engine
    relay = await HandRelay.connect(address, new, tmp_path / "new")
    await relay.send(wire.control(wire.HELLO, engine=ENGINE, version=1))
    await relay.expect(wire.REFUSE)
    relay.close()

    # revoked
    assert revoke_engine_credential(workspace, OTHER)
    relay = await HandRelay.connect(address, new, tmp_path / "new")
    await relay.expect(wire.REFUSE)
    relay.close()

    async def recorded():
        reasons = {e.detail["reason"] for e in await refusals(store)}
        return reasons if {"tls", "credential", "hello"} <= reasons else None

    await wait_for(recorded, 10, "the refusals recorded")
    assert local_hub.relay.links == {}


async def test_a_live_link_ends_when_its_credential_is_revoked(local_hub, store, workspace, tmp_path):
    """``crowdtui engine rm`` (another process) revokes the engine's credential: the link that
    is up ends at the hub's next look (SERVE poll or OPEN), not at its next connection."""
    address = local_hub.relay.address
    credential = issue_engine_credential(workspace, OTHER)
    relay = await HandRelay.connect(address, credential, tmp_path / "live")
    await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
    await relay.expect(wire.WELCOME)
    await wait_for(lambda: OTHER in local_hub.relay.links, 10, "the link up")
    assert revoke_engine_credential(workspace, OTHER)  # as engine rm does: the files go
    kind, _, payload = await relay.expect(wire.REFUSE, timeout=10)
    assert "revoked" in json.loads(payload)["reason"]
    assert await relay.next(timeout=10) is None  # and the hub closed the link
    relay.close()
    await wait_for(lambda: OTHER not in local_hub.relay.links, 10, "the link gone from the hub")

    async def recorded():
        return {e.detail["reason"] for e in await refusals(store)} >= {"revoked"} or None

    await wait_for(recorded, 10, "the revocation recorded")


async def test_the_relay_reconnects_after_the_hub_restarts(relayed, agent_image):
    from .conftest import bridge_session, run_agent

    r = relayed
    path = await r.socket_ready("alpha")
    async with Client(unix_client(path)) as a:
        await a.call_tool("send_message", {"to": "beta", "body": "before"})
    agent = await asyncio.to_thread(run_agent, r.client, r.workspace, agent_image, "alpha", r.volumes["alpha"])

    await r.hub.stop()
    r.hub = None
    # the relay lets go of the sockets while it has no hub: bridges wait instead of hitting a dead end
    await wait_for(lambda: not path.exists(), 30, "the relay to remove alpha's socket")
    r.hub = await start_hub(r.workspace, r.store, r.defs, r.host, r.port)
    path = await r.socket_ready("alpha")
    async with Client(unix_client(path)) as a:
        await a.call_tool("send_message", {"to": "beta", "body": "after"})
    answers = await asyncio.to_thread(
        bridge_session, agent,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "send_message", "arguments": {"to": "beta", "body": "from the container"}}})
    assert "error" not in {a.get("id"): a for a in answers}[2]
    assert [m.body for m in await r.store.inbox("beta")] == ["before", "after", "from the container"]
    assert {m.sender for m in await r.store.inbox("beta")} == {"alpha"}
    connected = await r.store.events_after(0, limit=1000, kinds=["relay.connected"])
    assert [e.detail["engine"] for e in connected] == [ENGINE, ENGINE]


async def test_the_real_relay_with_a_foreign_credential_is_refused_and_backs_off(relayed, agent_image, tmp_path):
    import re

    from crowdtui.runtime.relay_container import start_relay

    r = relayed
    await r.socket_ready("alpha")
    elsewhere, _ = init_workspace(tmp_path / "elsewhere", sample=False)
    foreign = issue_engine_credential(elsewhere, ENGINE)
    mine = engine_credential(r.workspace, ENGINE)
    foreign = type(foreign)(ENGINE, foreign.cert_pem, foreign.key_pem, mine.hub_cert_pem)  # trusts our hub
    container = await asyncio.to_thread(start_relay, r.client, r.workspace, ENGINE, f"{r.host}:{r.port}", foreign,
                                        agent_image)

    def delays():
        found = [float(d) for d in re.findall(r"retrying in ([0-9.]+) s", container.logs().decode(errors="replace"))]
        return found if len(found) >= 4 else None

    found = await wait_for(delays, 60, "the relay to retry four times")
    assert found[:4] == sorted(found[:4]) and found[3] > found[0]  # it backs off
    assert not r.hub.relay.links and not r.socket("alpha").exists()

    async def tls_refused():
        return [e for e in await refusals(r.store) if e.detail["reason"] == "tls"]

    await wait_for(tls_refused, 10, "the refused handshake recorded")
