"""Hostile bytes at an agent's egress proxy door: each gets a 4xx with one line (or a quiet close
for nothing at all), nothing is let out, and the door keeps serving."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import strategies as st

from crowdtui.hub.egress import EgressProxy
from crowdtui.roster import AgentDef

from .strategies import CONTROL, TRAVERSAL, examples

PIECES = [b"GET ", b"CONNECT ", b"http://", b"127.0.0.1", b":", b"80", b"65536", b"/", b" HTTP/1.1", b"\r\n",
          b"\r\n\r\n", b"\n", b"Host: ", b"\x00", b"\xff", b"[::1]", b"@", b"user:pw@", b"%00", b"*"] + \
         [t.encode("utf-8", "surrogatepass")[:200] for t in TRAVERSAL + CONTROL]
HEADS = st.one_of(
    st.binary(max_size=300).map(lambda b: b + b"\r\n\r\n"),
    st.lists(st.sampled_from(PIECES), max_size=20).map(lambda p: b"".join(p) + b"\r\n\r\n"),
)


async def test_hostile_bytes_at_the_egress_door(workspace):
    from qms import Store

    store = await Store.open(workspace.db_path)
    proxy = EgressProxy(workspace, store, header_timeout=2)
    # an allowlist that names nothing reachable: whatever parses, nothing may connect
    agent = AgentDef(name="alpha", file=Path(workspace.agents_dir) / "alpha" / "AGENT.md", rel_path="alpha",
                     tier=0, network="allowlist", egress=("only.example.invalid:443",))
    try:
        path = await proxy.open_door(agent)
        for raw in examples(HEADS, 150):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(raw)
            await writer.drain()
            got = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            head, _, body = got.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/1.1 ") else b""
            assert status in (b"400", b"403", b"431"), (raw[:120], got[:200])
            assert body.endswith(b"\n") and body.count(b"\n") == 1 and len(body) < 600, body[:200]
        events = await store.events_after(0, limit=100000)
        assert not [e for e in events if e.kind in ("egress.allowed", "egress.failed")]
        # still serving, still refusing by the list
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 403")
        writer.close()
    finally:
        await proxy.stop()
        await store.close()
