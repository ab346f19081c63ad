"""Agents over several engines beside one engine: the time to start a crew.

    .venv/bin/python bench/engines.py [--agents 30] [--parallel 6] [--round-trips 50]

Two extra dockerd are made here (tests/engines/engine_harness.py: each in its own network
namespace, reached over tcp+TLS, removed at the end); the agent image is copied to each
first (that copy is timed on its own). Then, in the same run:

  one engine      AGENTS agents started on the local engine
  three engines   AGENTS agents spread over local and the two extra engines (engine: NAME)

Each start goes through the one lifecycle API (crowdtui.runtime.lifecycle.start), PARALLEL
at a time; printed: the wall time for the crew, and p50/p90 of one start, and the ratio.
All three engines share this machine's two cores, so the figure says what spreading costs in
crowdtui (placement, a client per engine, TLS, copying the home in), not what more machines
would buy.

Then message round trips through one host (crowdtui.host.Host, as ``crowdtui serve`` runs it):
agent ``a`` on the local engine pings ``b`` on the local engine, then ``c`` on the first extra
engine (its door through that engine's relay, over TLS). One round trip = a sends, the other
waits for it (get_messages wait_seconds), marks it read and answers, a waits for the answer
and marks it read: six MCP calls, each agent through its own socket (``c``'s is the one its
relay holds in its IPC volume). Printed: p50/p90 of a round trip each way, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def roster(ws, names_engines: list[tuple[str, str]]) -> None:
    for name, engine in names_engines:
        (ws.agents_dir / name).mkdir(parents=True, exist_ok=True)
        (ws.agents_dir / name / "AGENT.md").write_text(
            f"---\nname: {name}\nengine: {engine}\ncommand: [sleep, infinity]\n---\nbench\n")


async def start_crew(ws, client, names: list[str], parallel: int) -> tuple[float, list[float]]:
    from crowdtui.roster import load_roster
    from crowdtui.runtime import lifecycle
    from crowdtui.runtime.containers import Runtime

    roster_now = load_roster(ws)
    runtime = Runtime(ws, client)
    store = await ws.open_store()
    gate = asyncio.Semaphore(parallel)
    each: list[float] = []

    async def one(name: str) -> None:
        async with gate:
            began = time.perf_counter()
            await lifecycle.start(runtime, store, roster_now.get(name), actor="operator", register_first=True)
            each.append(time.perf_counter() - began)

    try:
        began = time.perf_counter()
        await asyncio.gather(*(one(n) for n in names))
        return time.perf_counter() - began, each
    finally:
        for name in names:
            try:
                await runtime.remove(name)
            except Exception:
                pass
        await store.close()


async def round_trips(engine, client, tmp: Path, n: int) -> dict[str, list[float]]:
    """``n`` round trips a->b (both local) and a->c (c on ``engine``, through its relay)."""
    import socket

    from mcp import Client

    from crowdtui.host import Host, HostOptions
    from crowdtui.hub.unix_transport import unix_client
    from crowdtui.roster import load_roster
    from crowdtui.runtime import lifecycle
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.relay_container import relay_volume_name
    from crowdtui.workspace import init_workspace, load_workspace

    ws, _ = init_workspace(tmp / "messages", sample=False)
    with socket.socket() as s:
        s.bind((engine.host_ip, 0))
        port = s.getsockname()[1]
    cfg = ws.root / "crowd.toml"  # the test engine has no NAT: its relay joins its host network
    cfg.write_text(cfg.read_text().replace("\n[hub]\n", f'\n[hub]\nrelay_host = "{engine.host_ip}"\n'
                                           f"relay_port = {port}\n", 1)
                   + "\n" + engine.toml("e1") + 'relay_network = "host"\n')
    ws = load_workspace(ws.root)
    roster(ws, [("a", "local"), ("b", "local"), ("c", "e1")])
    runtime = Runtime(ws, client)
    host = Host(ws, options=HostOptions(dispatch=False), runtime=runtime)
    await host.start()
    out: dict[str, list[float]] = {"same engine": [], "across engines": []}
    try:
        defs = load_roster(ws)
        for name in ("a", "b", "c"):
            await lifecycle.start(runtime, host.store, defs.get(name), actor="operator")
        remote = engine.local_client()
        mount = remote.volumes.get(relay_volume_name(ws, "e1")).attrs["Mountpoint"]
        remote.close()
        sockets = {"a": ws.ipc_dir("a") / "mcp.sock", "b": ws.ipc_dir("b") / "mcp.sock",
                   "c": Path(mount) / "agents" / "c" / "mcp.sock"}
        deadline = time.monotonic() + 60
        while not all(p.is_socket() for p in sockets.values()) or not {"a", "b", "c"} <= set(host.hub.doors):
            if time.monotonic() > deadline:
                raise RuntimeError(f"doors not there in 60 s: {sockets}")
            await asyncio.sleep(0.1)

        async def take(agent_client) -> None:
            got = (await agent_client.call_tool("get_messages", {"wait_seconds": 10})).structured_content
            ids = [m["id"] for m in got["messages"]]
            if not ids:
                raise RuntimeError("no message within 10 s")
            await agent_client.call_tool("mark_messages_read", {"ids": ids})

        async with Client(unix_client(sockets["a"])) as a:
            for label, other in (("same engine", "b"), ("across engines", "c")):
                async with Client(unix_client(sockets[other])) as o:
                    for i in range(n + 3):  # three to warm up
                        began = time.perf_counter()
                        await a.call_tool("send_message", {"to": other, "body": f"ping {i}"})
                        await take(o)
                        await o.call_tool("send_message", {"to": "a", "body": f"pong {i}"})
                        await take(a)
                        if i >= 3:
                            out[label].append(time.perf_counter() - began)
    finally:
        for name in ("a", "b", "c"):
            try:
                await runtime.remove(name)
            except Exception:
                pass
        await host.stop()
        runtime.close()
        from crowdtui.runtime.disk import release_all

        release_all(ws)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=6)
    parser.add_argument("--round-trips", type=int, default=50, help="message round trips each way (0: none)")
    args = parser.parse_args()

    import docker

    from crowdtui.runtime.engines import copy_image
    from crowdtui.runtime.image import ensure_image
    from crowdtui.workspace import init_workspace, load_workspace
    from tests.engines.engine_harness import start_engine

    client = docker.from_env(timeout=300)
    image = ensure_image(client, progress=lambda line: None)
    engines = []
    try:
        for i in (0, 1):
            engines.append(start_engine(i + 1))
        copies = []
        for engine in engines:
            remote = engine.local_client()
            began = time.perf_counter()
            await asyncio.to_thread(copy_image, client, remote, image)
            copies.append(time.perf_counter() - began)
            remote.close()
        results = {}
        with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
            for label, where in (("one engine", ["local"]), ("three engines", ["local", "e1", "e2"])):
                ws, _ = init_workspace(Path(tmp) / label.replace(" ", "-"), sample=False)
                cfg = ws.root / "crowd.toml"
                cfg.write_text(cfg.read_text() + "\n" + engines[0].toml("e1") + "\n" + engines[1].toml("e2"))
                ws = load_workspace(ws.root)
                names = [f"b{i:02d}" for i in range(args.agents)]
                roster(ws, [(n, where[i % len(where)]) for i, n in enumerate(names)])
                results[label] = await start_crew(ws, client, names, args.parallel)
                from crowdtui.runtime.disk import release_all

                release_all(ws)
            trips = await round_trips(engines[0], client, Path(tmp), args.round_trips) if args.round_trips else {}
    finally:
        for engine in engines:
            engine.teardown()
        client.close()
    print(f"image copy to a fresh engine (save -> load over its socket): "
          + ", ".join(f"{c:.1f} s" for c in copies))
    print(f"{'':16} {'crew wall':>10} {'p50 start':>10} {'p90 start':>10}   ({args.agents} agents, {args.parallel} at a time)")
    for label, (wall, each) in results.items():
        print(f"{label:16} {wall:>9.2f}s {statistics.median(each):>9.3f}s {pct(each, 0.9):>9.3f}s")
    one, three = results["one engine"][0], results["three engines"][0]
    print(f"three engines / one engine (crew wall): {three / one:.2f}")
    if trips:
        print(f"message round trip a->x->a (6 MCP calls)  {'p50':>9} {'p90':>9}   ({args.round_trips} each)")
        for label, values in trips.items():
            print(f"{label:40} {statistics.median(values) * 1000:>7.1f}ms {pct(values, 0.9) * 1000:>7.1f}ms")
        print(f"across / same engine (p50): "
              f"{statistics.median(trips['across engines']) / statistics.median(trips['same engine']):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
