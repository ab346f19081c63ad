#!/usr/bin/env python3
"""Terminal path benchmark: the shared PTY session beside a bare docker-py attach socket.

In one run, on the same engine and image, with fresh containers for each side:

- keystroke-to-echo latency: one byte written, time until the program's echo of it
  arrives (``cat`` in raw mode inside a TTY container), p50 and p99;
- output throughput: the container writes N bytes to its terminal as fast as it can,
  time until the last one arrives.

The session side goes through ``crowdtui.runtime.pty.PtySession`` with a viewer (the
event loop, non-blocking socket, backlog, viewer callback); the bare side is a blocking
``attach_socket`` read in a plain loop. Ratios are session / bare (latency: lower is
better; throughput: higher is better). Containers are labelled ``crowdtui.bench`` and
removed at the end, also on failure.

    .venv/bin/python bench/attach.py [--keys 400] [--mbytes 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crowdtui.runtime.engine import connect  # noqa: E402
from crowdtui.runtime.image import ensure_image  # noqa: E402
from crowdtui.runtime.pty import PtySession  # noqa: E402

LABEL = {"crowdtui.bench": "attach"}
ECHO_CMD = ["sh", "-c", "stty raw -echo; exec cat"]


def flood_cmd(nbytes: int) -> list[str]:
    return ["sh", "-c", f"stty raw -echo; read go; head -c {nbytes} /dev/zero; sleep 30"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Bench:
    def __init__(self, client, image: str):
        self.client = client
        self.image = image
        self.containers = []
        self._keep = []

    def container(self, cmd: list[str]):
        c = self.client.containers.run(
            self.image, cmd, detach=True, tty=True, stdin_open=True, labels=LABEL,
            network_mode="none",
        )
        self.containers.append(c)
        return c

    def cleanup(self) -> None:
        for c in self.containers:
            try:
                c.remove(force=True)
            except Exception:
                pass

    # -- bare docker-py socket --------------------------------------------------

    def bare_socket(self, container_id: str) -> socket.socket:
        sock_io = self.client.api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 0},
        )
        sock = sock_io._sock
        sock.setblocking(True)
        self._keep.append(sock_io)  # keep the HTTP response alive while the socket is used
        return sock

    @staticmethod
    def bare_keys(sock: socket.socket, keys: range) -> list[float]:
        out = []
        for i in keys:
            key = bytes([97 + i % 26])
            t0 = time.perf_counter()
            sock.sendall(key)
            got = b""
            while key not in got:
                got += sock.recv(4096)
            out.append(time.perf_counter() - t0)
        return out

    def bare_throughput(self, nbytes: int) -> float:
        c = self.container(flood_cmd(nbytes))
        sock = self.bare_socket(c.id)
        try:
            time.sleep(0.3)
            got = 0
            t0 = time.perf_counter()
            sock.sendall(b"go\n")
            while got < nbytes:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk.count(b"\0")
            elapsed = time.perf_counter() - t0
            if got < nbytes:
                raise RuntimeError(f"bare socket got {got} of {nbytes} bytes")
            return nbytes / elapsed
        finally:
            sock.close()
            c.remove(force=True)

    # -- the shared session -----------------------------------------------------

    async def latency(self, bare_id: str, session_id: str, keys: int, block: int = 50):
        """Keystroke-to-echo on both sides, alternating blocks of keys so both see the same load."""
        sock = self.bare_socket(bare_id)
        session = await PtySession.open(self.client, session_id)
        loop = asyncio.get_running_loop()
        waiting: dict[str, object] = {}

        def on_output(data: bytes) -> None:
            fut = waiting.get("fut")
            if fut is not None and not fut.done() and waiting["key"] in data:
                fut.set_result(time.perf_counter())

        viewer = session.add_viewer(on_output)
        session.add_viewer(lambda data: None)  # a second, idle viewer: the session is shared
        bare: list[float] = []
        shared: list[float] = []
        try:
            await asyncio.sleep(0.3)
            for start in range(0, keys, block):
                span = range(start, min(keys, start + block))
                bare += self.bare_keys(sock, span)  # blocking, on purpose: nothing else runs
                for i in span:
                    key = bytes([97 + i % 26])
                    fut = loop.create_future()
                    waiting.update(fut=fut, key=key)
                    t0 = time.perf_counter()
                    viewer.write(key)
                    t1 = await asyncio.wait_for(fut, 10)
                    shared.append(t1 - t0)
            return bare, shared
        finally:
            sock.close()
            await session.close()

    async def session_throughput(self, nbytes: int) -> float:
        c = await asyncio.to_thread(self.container, flood_cmd(nbytes))
        session = await PtySession.open(self.client, c.id)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        got = 0

        def on_output(data: bytes) -> None:
            nonlocal got
            got += data.count(b"\0")
            if got >= nbytes and not done.done():
                done.set_result(time.perf_counter())

        viewer = session.add_viewer(on_output)
        try:
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            viewer.write(b"go\n")
            t1 = await asyncio.wait_for(done, 120)
            return nbytes / (t1 - t0)
        finally:
            await session.close()
            await asyncio.to_thread(c.remove, force=True)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=400, help="keystrokes per side per round")
    parser.add_argument("--mbytes", type=int, default=32, help="MiB of output per throughput run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, alternating the sides")
    args = parser.parse_args()

    client = connect()
    image = ensure_image(client, progress=lambda line: print(line, file=sys.stderr))
    bench = Bench(client, image)
    nbytes = args.mbytes * 1024 * 1024
    try:
        bare_c, sess_c = bench.container(ECHO_CMD), bench.container(ECHO_CMD)
        bare_lat: list[float] = []
        sess_lat: list[float] = []
        bare_tp: list[float] = []
        sess_tp: list[float] = []
        for _ in range(args.rounds):
            b, sh = await bench.latency(bare_c.id, sess_c.id, args.keys)
            bare_lat += b
            sess_lat += sh
            bare_tp.append(await asyncio.to_thread(bench.bare_throughput, nbytes))
            sess_tp.append(await bench.session_throughput(nbytes))
    finally:
        await asyncio.to_thread(bench.cleanup)
        client.close()

    def ms(v: float) -> str:
        return f"{v * 1000:.3f} ms"

    bp50, bp99 = percentile(bare_lat, 50), percentile(bare_lat, 99)
    sp50, sp99 = percentile(sess_lat, 50), percentile(sess_lat, 99)
    btp, stp = statistics.median(bare_tp), statistics.median(sess_tp)
    print(f"keystroke -> echo ({len(sess_lat)} keys per side, cat in a raw TTY)")
    print(f"  bare docker-py socket   p50 {ms(bp50):>10}   p99 {ms(bp99):>10}")
    print(f"  shared PtySession       p50 {ms(sp50):>10}   p99 {ms(sp99):>10}")
    print(f"  ratio session/bare      p50 {sp50 / bp50:>8.2f}x    p99 {sp99 / bp99:>8.2f}x")
    print(f"output throughput ({args.mbytes} MiB through the TTY, median of {args.rounds})")
    print(f"  bare docker-py socket   {btp / 2**20:8.1f} MiB/s")
    print(f"  shared PtySession       {stp / 2**20:8.1f} MiB/s")
    print(f"  ratio session/bare      {stp / btp:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
