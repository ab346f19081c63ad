"""A relay link is bounded and follows placement: oversized frames, credit past the window, stream ids
out of order and frames a relay may not send end the link (recorded); an agent moved off the engine loses its socket and its streams; the
relay container is hardened like the agents."""

from __future__ import annotations

import asyncio
import json
import struct

from crowdtui.hub import relay_wire as wire
from crowdtui.hub.relay_credentials import issue_engine_credential
from tests.waiting import wait_for

from .conftest import ENGINE, OTHER, PLACEMENT
from .test_relay_trust import HandRelay


async def welcomed(hub, workspace, folder) -> HandRelay:
    relay = await HandRelay.connect(hub.relay.address, issue_engine_credential(workspace, OTHER), folder)
    await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
    await relay.expect(wire.WELCOME)
    await relay.expect(wire.SERVE)
    return relay


async def ends_with_protocol_error(relay: HandRelay) -> str:
    while (got := await relay.next()) is not None:
        if got[0] == wire.REFUSE:
            return json.loads(got[2])["reason"]
    return ""


async def test_protocol_breaches_end_the_link_and_are_recorded(local_hub, store, workspace, tmp_path):
    # a frame over the size bound (only its header is sent: the hub must not wait for the rest)
    relay = await welcomed(local_hub, workspace, tmp_path / "a")
    await relay.send(struct.pack("!BII", wire.DATA, 1, wire.MAX_PAYLOAD + 1))
    assert "over" in await ends_with_protocol_error(relay)

    # credit past the window (a relay asking the hub to buffer without bound for it)
    relay = await welcomed(local_hub, workspace, tmp_path / "b")
    await relay.send(wire.control(wire.OPEN, 1, agent="gamma", door="mcp"))
    await relay.send(wire.credit(1, wire.WINDOW))
    assert "window" in await ends_with_protocol_error(relay)

    # more bytes on a stream than its window, to a door that is not reading them (both of gamma's
    # call places taken by waiting get_messages: further requests wait unread)
    relay = await welcomed(local_hub, workspace, tmp_path / "w")
    await relay.send(wire.control(wire.OPEN, 1, agent="gamma", door="mcp"))
    session = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "hand", "version": "1"}}},
               {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    session += [{"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                 "params": {"name": "get_messages", "arguments": {"wait_seconds": 60}}} for i in range(3)]
    await relay.send(wire.frame(wire.DATA, 1, "".join(json.dumps(x) + "\n" for x in session).encode()))

    async def flood():  # while the frames the hub sends back are read below
        for _ in range(64):
            await relay.send(wire.frame(wire.DATA, 1, b"X" * wire.MAX_PAYLOAD))
            await asyncio.sleep(0.01)

    sender = asyncio.create_task(flood())
    try:
        assert "window" in await ends_with_protocol_error(relay)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    # an even stream id, a frame the relay may not send
    for n, bad in enumerate([wire.control(wire.OPEN, 2, agent="gamma", door="mcp"),
                             wire.control(wire.SERVE, agents={"alpha": ["mcp"]}),
                             wire.frame(wire.DATA, 7, b"x")]):
        relay = await welcomed(local_hub, workspace, tmp_path / f"c{n}")
        await relay.send(bad)
        assert await ends_with_protocol_error(relay)

    async def recorded():
        return [e for e in await store.events_after(0, limit=1000, kinds=["relay.refused"])
                if e.detail["reason"] == "protocol"]

    events = await wait_for(recorded, 10, "a protocol refusal recorded")
    assert events[0].detail["engine"] == OTHER
    await wait_for(lambda: not local_hub.relay.links, 10, "the links to end")


async def test_an_agent_moved_off_the_engine_loses_its_socket_and_streams(local_hub, workspace, tmp_path):
    relay = await welcomed(local_hub, workspace, tmp_path / "a")
    answer = await relay.mcp_call(1, "gamma", "get_messages", {})  # stream 1 is open and serving gamma
    assert "error" not in answer
    PLACEMENT[OTHER] = set()
    try:
        local_hub.relay.refresh()
        kind, _, payload = await relay.expect(wire.SERVE)
        assert json.loads(payload)["agents"] == {}
        await relay.expect(wire.CLOSE)  # gamma's open stream ends with its placement
        await relay.send(wire.control(wire.OPEN, 3, agent="gamma", door="mcp"))
        kind, sid, _ = await relay.expect(wire.REFUSED)
        assert sid == 3
    finally:
        PLACEMENT[OTHER] = {"gamma"}
        relay.close()


async def test_the_relay_container_is_hardened_and_sees_no_host_folder(relayed):
    from crowdtui.runtime.relay_container import find_relay

    container = await asyncio.to_thread(find_relay, relayed.client, relayed.workspace, ENGINE)
    attrs = container.attrs
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["Privileged"] is False and host["PidsLimit"] and host["Memory"]
    assert [m["Type"] for m in attrs["Mounts"]] == ["volume"]  # no bind mount of the host
    assert not any(str(relayed.workspace.root) in json.dumps(m) for m in attrs["Mounts"])


async def test_an_agent_holding_many_connections_cannot_starve_the_others_on_its_engine(relayed):
    from mcp import Client

    from crowdtui.hub.limits import DEFAULT
    from crowdtui.hub.unix_transport import unix_client

    r = relayed
    alpha = await r.socket_ready("alpha")
    beta = await r.socket_ready("beta")
    held = []
    try:
        for _ in range(DEFAULT.connections_per_door + 24):  # and never closes any of them
            held.append(await asyncio.open_unix_connection(str(alpha)))
        refused = 0
        for reader, _ in held[DEFAULT.connections_per_door:]:
            line = await asyncio.wait_for(reader.readline(), 30)
            refused += b"connection refused" in line
        assert refused == 24
        [link] = r.hub.relay.links.values()
        # the refused streams are over at the hub whatever alpha keeps open
        await wait_for(lambda: len(link.streams) <= DEFAULT.connections_per_door, 10, "refused streams forgotten")
        async with Client(unix_client(beta)) as b:
            await b.call_tool("send_message", {"to": "alpha", "body": "beta is not starved"})
        assert [m.sender for m in await r.store.inbox("alpha")] == ["beta"]
    finally:
        for _, writer in held:
            writer.close()


async def test_a_door_that_is_busy_holds_the_agent_back_without_cutting_it(workspace, store, tmp_path):
    """Requests queued behind running calls wait (credit withheld), as on a local socket; the
    slow-reader cut is for a peer that does not read answers, not for the hub's own backlog."""
    from dataclasses import replace

    from crowdtui.hub.limits import DEFAULT

    from .conftest import definitions_of, start_hub

    hub = await start_hub(workspace, store, definitions_of(workspace), "127.0.0.1",
                          limits=replace(DEFAULT, slow_reader_timeout=0.5))
    try:
        relay = await welcomed(hub, workspace, tmp_path / "a")
        await relay.send(wire.control(wire.OPEN, 1, agent="gamma", door="mcp"))
        lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "hand", "version": "1"}}},
                 {"jsonrpc": "2.0", "method": "notifications/initialized"}]
        lines += [{"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                   "params": {"name": "get_messages", "arguments": {"wait_seconds": 2}}} for i in range(2)]
        pad = "p" * 60_000
        lines += [{"jsonrpc": "2.0", "id": 100 + i, "method": "ping", "params": {"_meta": {"pad": pad}}}
                  for i in range(10)]  # 600 kB behind two calls that hold both call places for 2 s
        data = "".join(json.dumps(x) + "\n" for x in lines).encode()
        credit, sent, answered, buf = wire.WINDOW, 0, set(), b""
        while len(answered) < 12:
            while sent < len(data) and credit > 0:
                n = min(credit, wire.MAX_PAYLOAD, len(data) - sent)
                await relay.send(wire.frame(wire.DATA, 1, data[sent:sent + n]))
                sent, credit = sent + n, credit - n
            got = await relay.next(timeout=20)
            assert got is not None and got[0] != wire.CLOSE, f"the stream was cut: {got}"
            kind, _, payload = got
            if kind == wire.CREDIT:
                credit += wire.parse_credit(payload)
            elif kind == wire.DATA:
                buf += payload
                *complete, buf = buf.split(b"\n")
                answered |= {json.loads(line).get("id") for line in complete if line.strip()} - {1}
        assert answered == {10, 11} | set(range(100, 110))
        relay.close()
    finally:
        await hub.stop()
