"""Issue 18 item 1: one hostile agent cannot exhaust the hub's memory or descriptors, nor slow
another agent's calls. A real hub in a subprocess (its RSS and open fds read from /proc),
raw JSON-RPC over the unix sockets it opened; agent "a" attacks, agent "b" keeps calling.

Bounds asserted (measured on a 2-core machine: peak +150 MB, after +10..30 MB, p99 0.36 s):
  * unread answers: RSS grows by less than 400 MB during the attack and is back within
    100 MB of the start after the connections close; b's calls p99 < 1 s, each < 5 s;
  * half-sent 1 MB lines on 300 connections: 16 admitted, RSS grows by less than 60 MB,
    all closed after the idle timeout;
  * 975 connections: the hub's open descriptors stay under its limit, b is still served,
    refusals are a handful of hub.refused events that count every refused connection;
  * the egress door and the HTTP side: connections past the cap refused, silent ones closed,
    a tunnel nobody reads cut off; the bridge rides out refusals and idle closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from crowdtui.hub.limits import ANSWER_TOO_LARGE, IDLE_CLOSED, TOO_MANY_CONNECTIONS

MB = 1024 * 1024

HUB = r"""
import asyncio, json, resource, sys
from pathlib import Path

async def main(root, limits, nofile, seed, http_port, upstream):
    from qms import Store
    from crowdtui.hub.hub import Hub
    from crowdtui.hub.limits import Limits
    from crowdtui.roster import AgentDef
    from crowdtui.workspace import init_workspace

    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    ws, _ = init_workspace(Path(root), sample=False)
    store = await Store.open(ws.db_path)
    names = ("a", "b", "c", "e")
    defs = {n: AgentDef(name=n, file=ws.agents_dir / n / "AGENT.md", rel_path=n, tier=0) for n in names}
    defs["e"] = AgentDef(name="e", file=ws.agents_dir / "e" / "AGENT.md", rel_path="e", tier=0,
                         network="allowlist", egress=(f"127.0.0.1:{upstream or 9}",))
    for n in names:
        await store.upsert_agent(n, path=n, tier=0)
    for _ in range(seed // 50):  # a's inbox holds 60 KB messages (seeded by the operator: an
        # agent sending them itself now meets its quotas, tested in test_quotas.py)
        await store.send_messages_batch("operator", [("a", "x" * 60000)] * 50)
    hub = Hub(ws, store, definitions=defs.get, limits=Limits(**limits), http_port=http_port or None)
    await hub.start()
    paths = {n: str(await hub.open_door(n)) for n in names}
    paths["egress"] = str(hub.egress.socket_path("e"))
    print(json.dumps({"paths": paths, "db": str(ws.db_path), "http": hub.http_url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await hub.stop()
    await store.close()

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
"""

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def call(i, name, args) -> bytes:
    return line({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args}})


class HubProcess:
    def __init__(self, tmp_path, limits: dict, nofile: int = 0, seed: int = 0, http_port: int = 0, upstream: int = 0):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HUB, str(tmp_path / "ws"), json.dumps(limits), str(nofile), str(seed),
             str(http_port), str(upstream)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = json.loads(self.proc.stdout.readline() or b"null")
        assert ready, "the hub subprocess did not start"
        self.paths, self.db, self.http_url = ready["paths"], ready["db"], ready["http"]

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def start_hub(tmp_path):
    started = []

    def start(limits: dict | None = None, **kw) -> HubProcess:
        hub = HubProcess(tmp_path, limits or {}, **kw)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


async def session(path: str):
    reader, writer = await asyncio.open_unix_connection(path, limit=64 * MB)
    writer.write(line(INIT) + line(INITIALIZED))
    await writer.drain()
    assert json.loads(await asyncio.wait_for(reader.readline(), 10))["id"] == 0
    return reader, writer


async def answer(reader, writer, i, name, args, timeout=10.0) -> dict:
    writer.write(call(i, name, args))
    await writer.drain()
    while True:
        reply = json.loads(await asyncio.wait_for(reader.readline(), timeout))
        if reply.get("id") == i:
            return reply


class Victim:
    """Agent b calling discover_agents every 0.1 s; latencies in seconds."""

    def __init__(self, path: str):
        self.path = path
        self.latencies: list[float] = []
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        reader, writer = await session(self.path)
        i = 1
        while not self.stop.is_set():
            t = time.monotonic()
            reply = await answer(reader, writer, i, "discover_agents", {}, timeout=5.0)
            assert "result" in reply, reply
            self.latencies.append(time.monotonic() - t)
            i += 1
            await asyncio.sleep(0.1)
        writer.close()

    async def finish(self) -> list[float]:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        return sorted(self.latencies)


def p99(values: list[float]) -> float:
    return values[max(0, int(len(values) * 0.99) - 1)]


async def events(db: str, kind: str):
    from qms import Store

    store = await Store.open(db)
    try:
        return await store.events_after(0, kinds=[kind], limit=500)
    finally:
        await store.close()


async def test_answers_nobody_reads_are_bounded_and_others_keep_their_pace(start_hub):
    hub = start_hub({"slow_reader_timeout": 3.0}, seed=500)
    base = hub.rss_mb()
    victim = Victim(hub.paths["b"])
    await asyncio.sleep(0.5)
    attackers = []
    for c in range(4):  # the attack: 8 x get_messages(limit=500) on 4 connections never read
        s = socket.socket(socket.AF_UNIX)
        s.connect(hub.paths["a"])
        s.sendall(line(INIT) + line(INITIALIZED)
                  + b"".join(call(10 + k, "get_messages", {"limit": 500}) for k in range(8)))
        attackers.append(s)
    # ... and a fifth asking for answers (3 MB each) it never reads: cut off as a slow reader
    slow = socket.socket(socket.AF_UNIX)
    slow.connect(hub.paths["a"])
    slow.sendall(line(INIT) + line(INITIALIZED) + b"".join(call(10 + k, "get_messages", {"limit": 50}) for k in range(8)))
    peak = base
    for _ in range(12):
        await asyncio.sleep(0.5)
        peak = max(peak, hub.rss_mb())
    lat = await victim.finish()
    assert peak - base < 400, f"the hub grew from {base:.0f} MB to {peak:.0f} MB"
    assert lat and lat[-1] < 5.0 and p99(lat) < 1.0, f"b's calls: p99 {p99(lat):.2f} s, max {lat[-1]:.2f} s"

    # what the attacker gets: an error asking for less, and nothing was marked read
    got = b""
    attackers[0].settimeout(10)
    while got.count(b"\n") < 9:
        chunk = attackers[0].recv(1 << 20)
        assert chunk, "the hub closed a connection whose (small) answers were read"
        got += chunk
    replies = [json.loads(r) for r in got.splitlines()[1:9]]
    assert all(r["error"]["code"] == ANSWER_TOO_LARGE and "ask for less" in r["error"]["message"] for r in replies)
    # the slow reader was cut off: what it can still read ends, it does not get all 8 answers
    slow.settimeout(10)
    rest = b""
    while chunk := slow.recv(1 << 20):
        rest += chunk
    assert rest.count(b'"result"') < 8

    for s in attackers + [slow]:
        s.close()
    reader, writer = await session(hub.paths["a"])  # the same agent asking sensibly is answered
    reply = await answer(reader, writer, 1, "get_messages", {"limit": 20})
    msgs = json.loads(reply["result"]["content"][0]["text"])["messages"]
    assert len(msgs) == 20 and all(m["read_at"] is None for m in msgs)
    writer.close()
    after = base
    for _ in range(20):
        await asyncio.sleep(0.5)
        after = hub.rss_mb()
        if after - base < 100:
            break
    assert after - base < 100, f"after the attack the hub kept {after - base:.0f} MB (peak {peak:.0f} MB)"
    # the refusals are events, one per reason and 10 s window (32 answers were refused)
    refusals = await events(hub.db, "hub.refused")
    reasons = [e.detail["reason"] for e in refusals if e.subject == "a"]
    assert "answer_too_large" in reasons and "slow_reader" in reasons, reasons
    assert reasons.count("answer_too_large") <= 3, reasons


async def test_half_sent_lines_and_idle_connections_are_closed(start_hub):
    hub = start_hub({"idle_timeout": 3.0})
    base = hub.rss_mb()
    victim = Victim(hub.paths["b"])
    held, refused = [], 0
    for _ in range(300):  # each holds a half-sent 1 MB line
        s = socket.socket(socket.AF_UNIX)
        s.connect(hub.paths["a"])
        s.setblocking(False)
        try:
            s.send(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"x":"' + b"y" * MB)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            pass
        held.append(s)
    await asyncio.sleep(1.0)
    peak = hub.rss_mb()
    for s in held:
        s.setblocking(True)
        s.settimeout(10)
    closed_with = []
    for s in held:  # every connection ends: refused at once, or closed as idle
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        codes = [json.loads(r)["error"]["code"] for r in data.splitlines() if r.strip()]
        closed_with.append(codes[-1] if codes else None)
        s.close()
    lat = await victim.finish()
    assert closed_with.count(IDLE_CLOSED) == 16, closed_with
    assert closed_with.count(TOO_MANY_CONNECTIONS) + closed_with.count(None) == 300 - 16
    assert peak - base < 60, f"the hub grew from {base:.0f} MB to {peak:.0f} MB"
    assert lat and lat[-1] < 5.0 and p99(lat) < 1.0, f"b's calls: p99 {p99(lat):.2f} s, max {lat[-1]:.2f} s"


async def test_descriptors_cannot_be_exhausted(start_hub):
    # a hub with 512 descriptors: the budget across doors is (512 - 256 reserve) / 2 = 128
    hub = start_hub({"connections_per_door": 60, "refusal_event_every": 1.0}, nofile=512)
    victim = Victim(hub.paths["b"])
    await asyncio.sleep(0.3)
    socks, most_fds = [], 0
    for agent in ("a", "c"):
        for _ in range(975 // 2):
            s = socket.socket(socket.AF_UNIX)
            s.connect(hub.paths[agent])
            socks.append(s)
            if len(socks) % 50 == 0:
                await asyncio.sleep(0.05)
                most_fds = max(most_fds, hub.open_fds())
    await asyncio.sleep(0.5)
    most_fds = max(most_fds, hub.open_fds())
    reader, writer = await session(hub.paths["b"])  # another agent still gets in and is answered
    assert "result" in await answer(reader, writer, 1, "discover_agents", {})
    writer.close()
    lat = await victim.finish()
    for s in socks:
        s.close()
    assert most_fds < 512 - 100, f"the hub had {most_fds} descriptors open of 512"
    assert lat and lat[-1] < 5.0 and p99(lat) < 1.0, f"b's calls: p99 {p99(lat):.2f} s, max {lat[-1]:.2f} s"
    await asyncio.sleep(1.5)  # the refusal window closes and its count is recorded
    refusals = await events(hub.db, "hub.refused")
    by_agent = {n: sum(e.detail["refused"] for e in refusals if e.subject == n) for n in ("a", "c")}
    assert by_agent == {"a": 975 // 2 - 60, "c": 975 // 2 - 60}, by_agent
    assert len(refusals) <= 12, f"{len(refusals)} refusal events for two agents in ~3 s"
    assert all(e.detail["door"] == "mcp" and e.detail["reason"] == "connections" for e in refusals)


async def test_http_side_caps_connections_and_closes_silent_ones(start_hub):
    from urllib.parse import urlsplit

    from tests.hub.conftest import free_port

    hub = start_hub({"http_connections": 8, "http_head_timeout": 1.5}, http_port=free_port())
    url = urlsplit(hub.http_url)
    conns = [await asyncio.open_connection(url.hostname, url.port) for _ in range(20)]
    await conns[0][1].drain()
    conns[1][1].write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head never finished
    t0 = time.monotonic()
    ends = []
    for reader, writer in conns:
        data = await asyncio.wait_for(reader.read(), 10)  # every one ends: 503 at once, or closed silent
        ends.append((data.split(b"\r\n", 1)[0], time.monotonic() - t0))
        writer.close()
    assert sum(1 for first, _ in ends if first == b"HTTP/1.1 503 Service Unavailable") == 12, ends
    assert all(first == b"" and t < 6 for first, t in ends[:8]), ends
    reader, writer = await asyncio.open_connection(url.hostname, url.port)  # and it still serves
    writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}")
    status = (await asyncio.wait_for(reader.readline(), 10)).split()[1]
    assert status == b"401", status  # no bearer token: the token guard answers
    writer.close()


async def test_the_bridge_rides_out_idle_closes_and_refusals(start_hub, tmp_path):
    from tests.hub.conftest import BRIDGE
    from tests.hub.test_bridge import BridgeProc

    hub = start_hub({"idle_timeout": 3.0, "connections_per_door": 1})
    squatter = socket.socket(socket.AF_UNIX)  # holds a's only place: the bridge is refused at first
    squatter.connect(hub.paths["a"])
    log = open(tmp_path / "bridge.log", "wb")
    env = {**os.environ, "CROWD_MCP_SOCKET": hub.paths["a"], "CROWD_BRIDGE_QUIET": "0"}
    bridge = BridgeProc(await asyncio.create_subprocess_exec(
        sys.executable, str(BRIDGE), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
        env=env))
    try:
        await bridge.send(INIT)
        with pytest.raises(asyncio.TimeoutError):  # refusals are not passed to the client
            await bridge.recv(timeout=1.5)
        squatter.close()
        assert (await bridge.recv(timeout=20))["id"] == 0  # the bridge got in and the session started
        await bridge.send(INITIALIZED)
        await bridge.send(json.loads(call(1, "discover_agents", {})))
        assert "result" in await bridge.recv()
        with pytest.raises(asyncio.TimeoutError):  # the hub closes it as idle; the client sees nothing
            await bridge.recv(timeout=4.0)
        await bridge.send(json.loads(call(2, "discover_agents", {})))  # reconnects when needed
        reply = await bridge.recv()
        assert reply["id"] == 2 and "result" in reply, reply
    except BaseException:
        print((tmp_path / "bridge.log").read_text())  # what the bridge said, for the failure report
        raise
    finally:
        await bridge.close()
        log.close()
    refusals = await events(hub.db, "hub.refused")
    assert any(e.subject == "a" and e.detail["reason"] == "connections" for e in refusals)


async def test_egress_door_caps_connections_and_cuts_readers_that_do_not_read(start_hub):
    async def flood(reader, writer):  # the destination: sends without end
        try:
            while True:
                writer.write(b"z" * 65536)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    upstream = await asyncio.start_server(flood, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    hub = start_hub({"egress_connections_per_door": 8, "egress_header_timeout": 1.5, "slow_reader_timeout": 1.5,
                     "refusal_event_every": 1.0}, upstream=port)
    base = hub.rss_mb()
    # a tunnel whose client never reads: the proxy stops after its buffers fill and cuts it
    tunnel = socket.socket(socket.AF_UNIX)
    tunnel.connect(hub.paths["egress"])
    tunnel.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    silent = []
    for _ in range(30):  # connections that never send a request head
        s = socket.socket(socket.AF_UNIX)
        s.connect(hub.paths["egress"])
        silent.append(s)
    t0 = time.monotonic()
    statuses = []
    for s in silent:
        s.settimeout(10)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        statuses.append((data.split(b" ", 2)[1] if data else b"", time.monotonic() - t0))
        s.close()
    assert sorted(code for code, _ in statuses).count(b"503") == 30 - 7, statuses  # the tunnel holds one place
    assert all(code == b"408" and t < 5 for code, t in statuses if code != b"503"), statuses
    await asyncio.sleep(2.0)  # past the slow-reader timeout
    peak = hub.rss_mb()
    tunnel.settimeout(10)
    received = 0
    while chunk := tunnel.recv(1 << 20):  # what was buffered, then the end
        received += len(chunk)
    tunnel.close()
    upstream.close()
    assert received < 16 * MB, f"the tunnel delivered {received} bytes; it should have been cut"
    assert peak - base < 30, f"the hub grew from {base:.0f} MB to {peak:.0f} MB"
    await asyncio.sleep(1.5)
    refusals = [e for e in await events(hub.db, "hub.refused") if e.detail["door"] == "egress"]
    assert sum(e.detail["refused"] for e in refusals) == 30 - 7 and len(refusals) <= 4, refusals


async def test_notification_streams_take_no_call_place_and_are_bounded_per_connection(start_hub):
    """Real MCP clients (Claude Code) open a `subscriptions/listen` stream as a session starts,
    before `initialize`; the SDK holds it open. With three such sessions of one agent open, a
    fourth session's calls are still answered (streams take no call place), and one
    connection cannot open streams without bound."""
    hub = start_hub()
    held = []
    for k in range(3):
        reader, writer = await asyncio.open_unix_connection(hub.paths["a"])
        writer.write(line({"jsonrpc": "2.0", "id": f"listen:{k}", "method": "subscriptions/listen", "params": {}}))
        await writer.drain()
        held.append((reader, writer))
    reader, writer = await session(hub.paths["a"])
    reply = await answer(reader, writer, 1, "discover_agents", {}, timeout=5.0)
    assert "result" in reply, reply
    r, w = await asyncio.open_unix_connection(hub.paths["a"])
    w.write(b"".join(line({"jsonrpc": "2.0", "id": f"more:{k}", "method": "subscriptions/listen", "params": {}})
                     for k in range(3)))
    await w.drain()
    refused = json.loads(await asyncio.wait_for(r.readline(), 10))  # the third stream on one connection
    assert refused["id"] == "more:2" and "at most 2" in refused["error"]["message"], refused
    for _, wr in held + [(reader, writer), (r, w)]:
        wr.close()
