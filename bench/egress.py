"""Egress proxy and secret handoff costs, each beside a reference run on this machine.

    .venv/bin/python bench/egress.py [--requests 300] [--mbytes 64] [--starts 5]

* HTTP GET round trips to a 127.0.0.1 server: direct (reference) vs through an agent's
  egress door (unix socket, allowlist check, an event per decision), p50/p99 and ratio;
* bulk bytes through a CONNECT tunnel vs a direct TCP connection to the same sink (MB/s);
* container start with a secret handed over through crowd-entry vs the same agent without
  secrets (median of --starts; needs the Docker engine and the agent image).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def _get(open_conn, raw: bytes) -> float:
    t = time.perf_counter()
    reader, writer = await open_conn()
    writer.write(raw)
    await writer.drain()
    await reader.read()
    writer.close()
    return time.perf_counter() - t


async def bench_http(ws, store, n: int) -> None:
    from crowdtui.hub.egress import EgressProxy
    from crowdtui.roster import AgentDef

    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    proxy = EgressProxy(ws, store)
    agent = AgentDef(name="bench", file=ws.agents_dir / "bench" / "AGENT.md", rel_path="bench", tier=0,
                     network="allowlist", egress=(f"127.0.0.1:{port}",))
    path = await proxy.open_door(agent)
    direct_req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    proxy_req = f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    direct, via = [], []
    for _ in range(n):
        direct.append(await _get(lambda: asyncio.open_connection("127.0.0.1", port), direct_req))
        via.append(await _get(lambda: asyncio.open_unix_connection(str(path)), proxy_req))
    d50, v50 = statistics.median(direct), statistics.median(via)
    print(f"HTTP GET round trip ({n}): direct p50 {d50 * 1e3:.2f} ms p99 {pct(direct, .99) * 1e3:.2f} ms | "
          f"via egress door p50 {v50 * 1e3:.2f} ms p99 {pct(via, .99) * 1e3:.2f} ms | ratio {v50 / d50:.1f}x")
    await proxy.stop()
    srv.shutdown()


async def bench_tunnel(ws, store, mbytes: int) -> None:
    from crowdtui.hub.egress import EgressProxy
    from crowdtui.roster import AgentDef

    got = 0

    async def sink(reader, writer):
        nonlocal got
        while chunk := await reader.read(1 << 16):
            got += len(chunk)
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = EgressProxy(ws, store)
    agent = AgentDef(name="bulk", file=ws.agents_dir / "bulk" / "AGENT.md", rel_path="bulk", tier=0,
                     network="allowlist", egress=(f"127.0.0.1:{port}",))
    path = await proxy.open_door(agent)
    block = os.urandom(1 << 16)
    total = mbytes * (1 << 20)

    async def push(reader, writer):
        sent = 0
        t = time.perf_counter()
        while sent < total:
            writer.write(block)
            await writer.drain()
            sent += len(block)
        writer.write_eof()
        await reader.read()
        writer.close()
        return time.perf_counter() - t

    r, w = await asyncio.open_connection("127.0.0.1", port)
    direct = await push(r, w)
    r, w = await asyncio.open_unix_connection(str(path))
    w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    await r.readuntil(b"\r\n\r\n")
    via = await push(r, w)
    print(f"bulk {mbytes} MiB: direct {mbytes / direct:.0f} MiB/s | CONNECT tunnel {mbytes / via:.0f} MiB/s | "
          f"{via / direct:.1f}x the time")
    await proxy.stop()
    server.close()


async def bench_starts(ws, store, n: int) -> None:
    from crowdtui.roster import AgentDef
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.image import ensure_image

    client = connect()
    ensure_image(client, progress=lambda line: None)
    rt = Runtime(ws, client, store=store)

    def agent(secrets):
        return AgentDef(name="starter", file=ws.agents_dir / "starter" / "AGENT.md", rel_path="starter", tier=0,
                        command=("sleep", "infinity"), secrets=secrets)

    times: dict[str, list[float]] = {"plain": [], "secret": []}
    try:
        for _ in range(n):
            for kind, secrets in (("plain", ()), ("secret", ("BENCH_TOKEN",))):
                t = time.perf_counter()
                await rt.start(agent(secrets), secrets={"BENCH_TOKEN": "x" * 40} if secrets else None)
                times[kind].append(time.perf_counter() - t)
                await rt.remove("starter")
    finally:
        await rt.remove("starter")
    p, s = statistics.median(times["plain"]), statistics.median(times["secret"])
    print(f"container start ({n}): plain p50 {p * 1e3:.0f} ms | with a secret handed over {s * 1e3:.0f} ms | "
          f"+{(s - p) * 1e3:.0f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--mbytes", type=int, default=64)
    ap.add_argument("--starts", type=int, default=5)
    opts = ap.parse_args()
    from qms import Store

    from crowdtui.workspace import init_workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = init_workspace(Path(tmp) / "ws", sample=False)
        store = await Store.open(ws.db_path)
        try:
            await bench_http(ws, store, opts.requests)
            await bench_tunnel(ws, store, opts.mbytes)
            if opts.starts:
                await bench_starts(ws, store, opts.starts)
        finally:
            await store.close()
            from crowdtui.runtime.disk import release_all

            release_all(ws)  # the agents' home filesystems (loop mounts) go with the workspace


if __name__ == "__main__":
    asyncio.run(main())
