"""Inbound chat messages per second, stored and routed into an agent's inbox, beside a
bare SQLite insert loop with the same durability (WAL, synchronous=FULL, one commit per
row) in the same run, on the same disk.

    .venv/bin/python bench/dispatch.py [--messages N] [--concurrency C]

Four figures:
  bare insert     sqlite3 INSERT + COMMIT per row (the floor for one durable write)
  bare HTTP       plain uvicorn (binding its own port; no crowdtui code) serving a no-op
                  Starlette handler, flooded by the same channel client (the floor for one
                  request)
  dispatch direct C concurrent callers of Dispatch.receive() (each returns once its message
                  is committed; arrivals together share a commit) while dispatch's router
                  moves them into the inbox in batches, no HTTP: what dispatch itself costs
  dispatch HTTP   POST /channels/inbound on 127.0.0.1 with C concurrent senders, until
                  every message is in the agent's inbox: what a channel sees
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def bare_inserts(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, chat TEXT, msg_id TEXT UNIQUE, body TEXT)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (chat, msg_id, body) VALUES (?, ?, ?)", ("bench:1", str(i), f"message {i}"))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return n / dt


async def setup(root: Path):
    from qms import Store

    from crowdtui.dispatch.routes import add_route
    from crowdtui.dispatch.service import Dispatch, DispatchConfig

    store = await Store.open(root / "crowd.db")
    await store.upsert_agent("bot", path="bot", tier=0)
    await add_route(store, "*", "bot", actor="operator", now=time.time())
    dispatch = Dispatch(store, config=DispatchConfig(health_interval=3600), log=lambda line: None)
    dispatch.router.typing = False  # no live channel callback here to show "typing" to
    return store, dispatch


async def dispatch_direct(root: Path, n: int, concurrency: int) -> float:
    """``concurrency`` senders call ``Dispatch.receive()`` (each returns once its message is
    committed) while dispatch's own router runs, until every message is in the inbox."""
    from crowdtui.dispatch.inbound import parse_inbound

    store, dispatch = await setup(root)
    ch, _ = await dispatch.register(name="bench", platform="bench", callback_url="http://127.0.0.1:9",
                                    prefixes=["bench:"])
    await dispatch.start()
    todo = iter(range(n))

    async def sender() -> None:
        for i in todo:
            await dispatch.receive(ch, parse_inbound({"id": str(i), "chat": f"bench:{i % 10}", "sender": "u",
                                                      "text": f"message {i}"}))

    t0 = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    while (await store.query("SELECT COUNT(*) FROM messages WHERE recipient = 'bot'"))[0][0] < n:
        await asyncio.sleep(0.002)
    dt = time.perf_counter() - t0
    await dispatch.stop()
    await store.close()
    return n / dt


async def dispatch_http(root: Path, n: int, concurrency: int) -> float:
    import httpx

    from crowdtui.dispatch.api import build_app
    from crowdtui.dispatch.http_server import LocalServer

    store, dispatch = await setup(root)
    await dispatch.start()
    server = await LocalServer(build_app(dispatch, register_key="k")).start()
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        r = await client.post("/channels/register", headers={"Authorization": "Bearer k"},
                              json={"name": "bench", "callback_url": "http://127.0.0.1:9", "prefixes": ["bench:"]})
        token = r.json()["token"]
        # the channel is its own process, as a real one would be
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", server.url, token, str(n), str(concurrency))
        assert await proc.wait() == 0, "the flooding channel failed"
        acked = time.perf_counter() - t0
        while (await store.query("SELECT COUNT(*) FROM messages WHERE recipient = 'bot'"))[0][0] < n:
            await asyncio.sleep(0.005)
        dt = time.perf_counter() - t0
    await server.stop()
    await dispatch.stop()
    await store.close()
    print(f"  (dispatch HTTP: all {n} acknowledged after {acked:.2f} s, all routed after {dt:.2f} s)")
    return n / dt


async def flood(url: str, token: str, n: int, concurrency: int) -> None:
    """The channel side: ``concurrency`` keep-alive connections POST ``n`` messages; each
    must be acknowledged (200). A minimal HTTP/1.1 client on asyncio streams, so that the
    client is not what is measured (httpx tops out at a few hundred requests a second
    here); the same client drives the floor."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    todo = iter(range(n))

    async def sender() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in todo:
                body = json.dumps({"id": str(i), "chat": f"bench:{i % 10}", "sender": "u",
                                   "text": f"message {i}"}).encode()
                writer.write(b"POST /channels/inbound HTTP/1.1\r\nHost: %s:%d\r\n"
                             b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (host.encode(), port, token.encode(), len(body), body))
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answer = await reader.readexactly(length)
                assert status.split()[1] == b"200", (status, answer)
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(concurrency)))


async def bare_http(n: int, concurrency: int) -> float:
    """The floor: plain uvicorn (its own binding, nothing of crowdtui's) serving a no-op
    Starlette handler, flooded by the same channel client."""
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request):
        await request.body()
        return JSONResponse({"ok": True, "seq": 0, "duplicate": False})

    with socket.socket() as probe:  # a free port for uvicorn to bind itself
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = Starlette(routes=[Route("/channels/inbound", ok, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--client", f"http://127.0.0.1:{port}",
                                                "-", str(n), str(concurrency))
    assert await proc.wait() == 0
    dt = time.perf_counter() - t0
    server.should_exit = True
    await task
    return n / dt


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--client":
        asyncio.run(flood(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="crowd-bench-", dir=".") as tmp:
        root = Path(tmp)
        (root / "a").mkdir(), (root / "b").mkdir(), (root / "c").mkdir()
        bare = bare_inserts(root / "a" / "bare.db", args.messages)
        direct = asyncio.run(dispatch_direct(root / "b", args.messages, args.concurrency))
        floor = asyncio.run(bare_http(args.messages, args.concurrency))
        http = asyncio.run(dispatch_http(root / "c", args.messages, args.concurrency))
    print(f"messages: {args.messages}, HTTP senders: {args.concurrency}")
    print(f"bare insert loop      {bare:9.0f} rows/s")
    print(f"dispatch direct       {direct:9.0f} msgs/s stored+routed   ({direct / bare:.2f}x bare)")
    print(f"bare HTTP             {floor:9.0f} req/s  (plain uvicorn, no-op handler)")
    print(f"dispatch HTTP         {http:9.0f} msgs/s stored+routed   ({http / bare:.2f}x bare insert, "
          f"{http / floor:.2f}x bare HTTP)")


if __name__ == "__main__":
    main()
