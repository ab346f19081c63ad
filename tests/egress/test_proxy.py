"""The egress proxy on its own: allowlist decisions, events, tunnels, malformed and oversized requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crowdtui.hub.egress import EgressError, EgressProxy, allowed, parse_rules
from crowdtui.roster import AgentDef


def agent(ws, name, egress=(), network="allowlist") -> AgentDef:
    return AgentDef(name=name, file=Path(ws.agents_dir) / name / "AGENT.md", rel_path=name, tier=0,
                    network=network, egress=tuple(egress))


async def ask(path: Path, raw: bytes, timeout: float = 10.0) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def egress_events(store, kind=None):
    return [e for e in await store.events_after(0) if e.kind.startswith("egress.") and (kind is None or e.kind == kind)]


def test_rules_match_host_globs_and_ports():
    rules = parse_rules(["api.github.com:443", "*.example.org:*", "127.0.0.1:8080"])
    assert allowed(rules, "api.github.com", 443)
    assert allowed(rules, "API.GitHub.com.", 443)  # case and a trailing dot do not matter
    assert not allowed(rules, "api.github.com", 80)
    assert not allowed(rules, "evil.api.github.com", 443)
    assert allowed(rules, "a.b.example.org", 22)
    assert not allowed(rules, "example.org", 22)  # *.x does not cover x itself
    assert not allowed(rules, "example.org.evil.net", 443)
    assert allowed(rules, "127.0.0.1", 8080) and not allowed(rules, "localhost", 8080)
    assert not allowed(parse_rules([]), "127.0.0.1", 8080)
    for bad in ("nohost", "host:0", "host:99999", ":443", "host:http"):
        with pytest.raises(EgressError, match="is not 'host:port'"):
            parse_rules([bad])


async def test_allowed_plain_http_is_forwarded_and_denied_is_refused_and_recorded(
        workspace, store, http_server):
    ok_port, other_port = http_server("allowed"), http_server("other")
    proxy = EgressProxy(workspace, store)
    try:
        path = await proxy.open_door(agent(workspace, "alpha", [f"127.0.0.1:{ok_port}"]))
        assert path == workspace.ipc_dir("alpha") / "egress.sock" and path.exists()

        got = await ask(path, f"GET http://127.0.0.1:{ok_port}/x?q=secret-token HTTP/1.1\r\n"
                              f"Host: 127.0.0.1:{ok_port}\r\nProxy-Connection: keep-alive\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.0 200") and got.endswith(f"hello from allowed /x?q=secret-token "
                                                                  f"host=127.0.0.1:{ok_port}".encode())

        denied_port = await ask(path, f"GET http://127.0.0.1:{other_port}/ HTTP/1.1\r\n\r\n".encode())
        assert denied_port.startswith(b"HTTP/1.1 403")
        assert f"egress to 127.0.0.1:{other_port} is not allowed for agent alpha".encode() in denied_port
        assert b"agents/alpha/AGENT.md" in denied_port and b"hello" not in denied_port

        denied_host = await ask(path, f"CONNECT localhost:{ok_port} HTTP/1.1\r\n\r\n".encode())
        assert denied_host.startswith(b"HTTP/1.1 403") and b"localhost" in denied_host

        events = await egress_events(store)
        decisions = [(e.kind, e.actor, e.detail["host"], e.detail["port"]) for e in events
                     if e.kind in ("egress.allowed", "egress.denied")]
        assert decisions == [
            ("egress.allowed", "alpha", "127.0.0.1", ok_port),
            ("egress.denied", "alpha", "127.0.0.1", other_port),
            ("egress.denied", "alpha", "localhost", ok_port),
        ]
        # the path and query (which may carry credentials) are never recorded
        assert "secret-token" not in repr([e.detail for e in events])
    finally:
        await proxy.stop()
    assert not path.exists()


async def test_connect_tunnel_carries_bytes_both_ways(workspace, store, http_server):
    port = http_server("tunnel")
    async with EgressProxy(workspace, store) as proxy:
        path = await proxy.open_door(agent(workspace, "alpha", ["127.0.0.1:*"]))
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert status.startswith(b"HTTP/1.1 200")
        # inside the tunnel: a request to the server itself (as HTTPS would be, in TLS)
        writer.write(b"GET /through HTTP/1.0\r\nHost: t\r\n\r\n")
        await writer.drain()
        body = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert body.endswith(b"hello from tunnel /through host=t")


async def test_each_agent_has_its_own_list_and_socket(workspace, store, http_server):
    port = http_server("a")
    async with EgressProxy(workspace, store) as proxy:
        a = await proxy.open_door(agent(workspace, "alpha", [f"127.0.0.1:{port}"]))
        b = await proxy.open_door(agent(workspace, "beta", ["example.invalid:443"]))
        assert a != b
        req = f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n".encode()
        assert (await ask(a, req)).startswith(b"HTTP/1.0 200")
        assert (await ask(b, req)).startswith(b"HTTP/1.1 403")
        denied = await egress_events(store, "egress.denied")
        assert [e.actor for e in denied] == ["beta"]
        # agents with network none or open get no proxy at all
        assert await proxy.open_door(agent(workspace, "gamma", network="none")) is None
        assert await proxy.open_door(agent(workspace, "delta", network="open")) is None
        assert not (workspace.ipc_dir("gamma") / "egress.sock").exists()
        # re-opening with a new list replaces the rules; closing removes the socket
        await proxy.open_door(agent(workspace, "alpha", []))
        assert (await ask(a, req)).startswith(b"HTTP/1.1 403")
        await proxy.close_door("alpha")
        assert not a.exists()
        await proxy.close_door("alpha")  # idempotent


@pytest.mark.parametrize("raw, status, words", [
    (b"HELLO\r\n\r\n", 400, b"request line"),
    (b"GET /relative HTTP/1.1\r\n\r\n", 400, b"absolute http:// URL"),
    (b"GET https://127.0.0.1:1/ HTTP/1.1\r\n\r\n", 400, b"CONNECT"),
    (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", 400, b"no valid port"),
    (b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n", 400, b"no valid port"),
    (b"CONNECT a/b@c:80 HTTP/1.1\r\n\r\n", 400, b"not a valid host"),
    (b"GET http://user:pw@127.0.0.1:1/ HTTP/1.1\r\n\r\n", 400, b"user:password"),
    (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nBad Header\r\n\r\n", 400, b"malformed header"),
    (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, b"control characters"),
    (b"GET http://127.0.0.1:1/ HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n", 431, b"over 16384 bytes"),
    (b"GET http://127.0.0.1:1/ HTTP/1.1\r\n", 400, b"ended early"),
])
async def test_malformed_requests_get_a_clear_status_and_line(workspace, store, raw, status, words):
    async with EgressProxy(workspace, store) as proxy:
        path = await proxy.open_door(agent(workspace, "alpha", ["*:*"]))
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(raw)
        await writer.drain()
        if not raw.endswith(b"\r\n\r\n"):
            writer.write_eof()
        got = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}".encode()), got[:200]
        assert words in body and body.count(b"\n") == 1
        # nothing was decided for a request that never parsed
        assert not await egress_events(store, "egress.allowed")


async def test_slow_request_head_times_out(workspace, store):
    async with EgressProxy(workspace, store, header_timeout=0.5) as proxy:
        path = await proxy.open_door(agent(workspace, "alpha", ["*:*"]))
        got = await ask(path, b"GET http://127.0.0.1:1/ HTTP/1.1\r\n")  # never finished
        assert got.startswith(b"HTTP/1.1 408")


async def test_unreachable_allowed_destination_is_a_502_and_recorded(workspace, store, http_server):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()  # nothing listens there now
    async with EgressProxy(workspace, store) as proxy:
        path = await proxy.open_door(agent(workspace, "alpha", [f"127.0.0.1:{dead}", "nowhere.invalid:80"]))
        got = await ask(path, f"GET http://127.0.0.1:{dead}/ HTTP/1.1\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 502") and b"cannot connect" in got
        got = await ask(path, b"GET http://nowhere.invalid/ HTTP/1.1\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 502") and b"cannot resolve nowhere.invalid" in got
        failed = await egress_events(store, "egress.failed")
        assert [(e.detail["host"], e.detail["port"]) for e in failed] == [("127.0.0.1", dead), ("nowhere.invalid", 80)]


async def test_connection_limit_refuses_the_extra_one(workspace, store, http_server):
    async with EgressProxy(workspace, store, max_connections=2, header_timeout=5) as proxy:
        path = await proxy.open_door(agent(workspace, "alpha", ["*:*"]))
        held = [await asyncio.open_unix_connection(str(path)) for _ in range(2)]
        await asyncio.sleep(0.1)
        got = await ask(path, b"")
        assert got.startswith(b"HTTP/1.1 503") and b"retry later" in got
        for _r, w in held:
            w.close()


async def test_bad_name_opens_nothing(workspace, store):
    from crowdtui.errors import CrowdError

    async with EgressProxy(workspace, store) as proxy:
        with pytest.raises(CrowdError, match="is not an agent name"):
            await proxy.open_door(agent(workspace, "../evil", ["*:*"]))
        with pytest.raises(EgressError, match="is not 'host:port'"):
            await proxy.open_door(agent(workspace, "alpha", ["bad"]))
        assert proxy.doors == {} and not (workspace.ipc_dir("alpha") / "egress.sock").exists()


async def test_wildcards_never_reach_internal_addresses_exact_entries_may(workspace, store, http_server):
    port = http_server("inside")
    req = lambda host: f"GET http://{host}:{port}/ HTTP/1.1\r\n\r\n".encode()  # noqa: E731
    async with EgressProxy(workspace, store) as proxy:
        wide = await proxy.open_door(agent(workspace, "alpha", ["*:*", "*.localhost:*"]))
        for host in ("localhost", "127.0.0.1", "[::ffff:127.0.0.1]"):
            got = await ask(wide, req(host))
            assert got.startswith(b"HTTP/1.1 403") and b"resolves to the internal address" in got, got[:200]
        exact = await proxy.open_door(agent(workspace, "beta", [f"localhost:{port}"]))
        assert (await ask(exact, req("localhost"))).startswith(b"HTTP/1.0 200")
        denied = await egress_events(store, "egress.denied")
        assert [(e.actor, e.detail["host"]) for e in denied] == [
            ("alpha", "localhost"), ("alpha", "127.0.0.1"), ("alpha", "::ffff:127.0.0.1")]
        assert all("internal address" in e.detail["reason"] for e in denied)


async def test_idle_tunnels_are_closed(workspace, store):
    held: list[asyncio.StreamWriter] = []

    async def silent(reader, writer):  # accepts and never says anything
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with EgressProxy(workspace, store, idle_timeout=0.5) as proxy:
            path = await proxy.open_door(agent(workspace, "alpha", [f"127.0.0.1:{port}"]))
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 200")
            # nobody speaks: the proxy ends the tunnel on its own (well before this generous wait)
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
    finally:
        for w in held:
            w.close()
        server.close()
