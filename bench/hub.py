"""Hub tool-call round trips over the agents' unix sockets, beside a bare JSON echo.

    .venv/bin/python bench/hub.py [--calls 400] [--clients 1,20]

Runs in one go, on this machine, each server in its own process:
  * reference: a bare newline-JSON echo server over a unix socket (parse, dump, write);
    it shares no code with the hub;
  * for scale, not a floor: the MCP SDK alone -- its own `Server.run` session (its
    dispatcher and memory streams) with a no-op tool, behind a newline-JSON adapter
    written here (no crowdtui code);
  * the same no-op tool through a hub door's session (`serve_connection`:
    crowdtui.hub.door_session around the SDK's request kernel), no grants, store or audit;
  * the hub (`Hub` with a real store file, grants, events), one door per client agent.
The client of every row but the last is a minimal newline-JSON-RPC client written here (an
MCP session per connection: initialize in the 2025-06-18 handshake era, then tools/call),
1 and 20 concurrent clients. The last rows drive the hub with the real MCP SDK client
(`mcp.Client` over crowdtui's unix transport, which speaks the 2026-07-28 era), to show
what an agent using the SDK's client sees: that client's own cost is in them. Prints
p50/p99 round trip and calls/s, and the ratio to the echo. Every hub call also leaves an
audit event in SQLite (synchronous=FULL): a change waits for its records, a read-only
call's is written in a group after the answer (crowdtui.hub.eventlog).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}


# ---- servers (child processes) ---------------------------------------------------------

async def serve_echo(path: str) -> None:
    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write((json.dumps({"jsonrpc": "2.0", "id": json.loads(line).get("id"), "result": {}}) + "\n").encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(handle, path=path)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def serve_hub(root: str, agents: int) -> None:
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.workspace import load_workspace

    # the quota is still counted on every send (its cost is measured), never reached; the
    # hub sets the store's quotas from crowd.toml, so that is where they go
    toml = Path(root) / "crowd.toml"
    toml.write_text(toml.read_text() + "\n[quotas]\nmessages_per_minute = 1000000000\nmessages_per_day = 1000000000\n")
    ws = load_workspace(Path(root))
    store = await Store.open(ws.db_path)
    for i in range(agents):
        await store.upsert_agent(f"a{i}", path=f"a{i}", tier=1)
    hub = Hub(ws, store, definitions=lambda name: None)
    await hub.start()
    for i in range(agents):
        await hub.open_door(f"a{i}")
    print("ready", flush=True)
    await asyncio.Event().wait()


def noop_server():
    """An MCP server with one no-op tool named like the hub's; no grants, store or audit."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bare", log_level="WARNING")

    @server.tool()
    async def get_messages(limit: int = 10) -> dict:
        return {"messages": []}

    return server


async def sdk_session(server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The MCP SDK's own session for one connection (``Server.run``: its dispatcher and
    memory streams), over newline JSON as its stdio transport frames it. No crowdtui code
    (tests/hub/test_door_session.py compares the hub's door session with this)."""
    import anyio
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    lowlevel = server._lowlevel_server
    read_send, read_recv = anyio.create_memory_object_stream(0)
    write_send, write_recv = anyio.create_memory_object_stream(0)

    async def pump_in():
        async with read_send:
            while line := await reader.readline():
                await read_send.send(SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False)))

    async def pump_out():
        async for item in write_recv:
            m = item.message
            writer.write(type(m).__pydantic_serializer__.to_json(m, by_alias=True, exclude_unset=True) + b"\n")
            await writer.drain()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        await lowlevel.run(read_recv, write_send, lowlevel.create_initialization_options())
        tg.cancel_scope.cancel()
    writer.close()


async def serve_sdk(path: str) -> None:
    """The MCP SDK alone: its own session with the no-op tool, on a unix socket."""
    server = noop_server()

    async def handle(reader, writer):
        await sdk_session(server, reader, writer)

    unix = await asyncio.start_unix_server(handle, path=path, limit=1 << 22)
    print("ready", flush=True)
    async with unix:
        await unix.serve_forever()


async def serve_door(path: str) -> None:
    """The same no-op tool through a hub door's session (crowdtui.hub.unix_transport)."""
    from crowdtui.hub.unix_transport import serve_connection

    server = noop_server()

    async def handle(reader, writer):
        await serve_connection(server, "a0", reader, writer)

    unix = await asyncio.start_unix_server(handle, path=path)
    print("ready", flush=True)
    async with unix:
        await unix.serve_forever()


# ---- client ----------------------------------------------------------------------------

class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.next_id = reader, writer, 0

    @classmethod
    async def open(cls, path: str, mcp: bool):
        from crowdtui.hub.unix_transport import connect_unix

        reader, writer = await asyncio.open_unix_connection(sock=connect_unix(Path(path)), limit=1 << 22)
        conn = cls(reader, writer)
        if mcp:
            await conn.rpc(INIT)
            writer.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        return conn

    async def rpc(self, msg: dict) -> dict:
        self.next_id += 1
        msg = {**msg, "id": self.next_id}
        self.writer.write((json.dumps(msg) + "\n").encode())
        await self.writer.drain()
        reply = json.loads(await self.reader.readline())
        if "error" in reply or (reply.get("result") or {}).get("isError"):
            raise RuntimeError(f"call failed: {reply}")
        return reply


async def run_clients(paths: list[str], calls: int, make_msg, mcp: bool) -> tuple[list[float], float]:
    conns = [await Conn.open(p, mcp) for p in paths]
    latencies: list[float] = []

    async def worker(conn, i):
        for n in range(calls):
            t0 = time.perf_counter()
            await conn.rpc(make_msg(i, n))
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, i) for i, c in enumerate(conns)))
    wall = time.perf_counter() - t0
    for c in conns:
        c.writer.close()
    return latencies, wall


async def run_sdk_clients(paths: list[str], calls: int) -> tuple[list[float], float]:
    """The same calls through the real MCP SDK client (``mcp.Client``), one per door."""
    from contextlib import AsyncExitStack

    from mcp import Client

    from crowdtui.hub.unix_transport import unix_client

    latencies: list[float] = []
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(unix_client(Path(p)))) for p in paths]

        async def worker(client):
            for _ in range(calls):
                t0 = time.perf_counter()
                result = await client.call_tool("get_messages", {"limit": 10})
                latencies.append(time.perf_counter() - t0)
                if result.is_error:
                    raise RuntimeError(f"call failed: {result}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - t0
    return latencies, wall


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_child(args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"server {args} did not start: {line!r}")
    return proc


async def main_bench(calls: int, client_counts: list[int]) -> None:
    from crowdtui.workspace import init_workspace

    tmp = Path(tempfile.mkdtemp(prefix="crowd-bench-"))
    ws, _ = init_workspace(tmp / "ws", sample=False)
    most = max(client_counts)
    echo_path = str(tmp / "echo.sock")
    echo = start_child(["--serve-echo", echo_path])
    sdk_path = str(tmp / "sdk.sock")
    sdk = start_child(["--serve-sdk", sdk_path])
    door_path = str(tmp / "door.sock")
    door = start_child(["--serve-door", door_path])
    hub = start_child(["--serve-hub", str(ws.root), str(most)])
    try:
        print(f"hub bench: {calls} calls per client, machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}")
        print("client: a minimal newline-JSON-RPC client (handshake era), except the rows marked SDK client")
        print(f"{'what':<44} {'clients':>7} {'p50 ms':>9} {'p99 ms':>9} {'calls/s':>9} {'vs echo':>8}")
        for n in client_counts:
            per = max(20, calls // n) if n > 1 else calls
            echo_lat, echo_wall = await run_clients([echo_path] * n, per, lambda i, k: {"jsonrpc": "2.0", "method": "echo", "params": {"k": k}}, mcp=False)
            echo_rate = len(echo_lat) / echo_wall
            print(f"{'bare JSON echo (unix socket)':<44} {n:>7} {pct(echo_lat, 50) * 1e3:>9.3f} {pct(echo_lat, 99) * 1e3:>9.3f} {echo_rate:>9.0f} {'1.0x':>8}")
            get = lambda i, k: {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "get_messages", "arguments": {"limit": 10}}}  # noqa: E731
            for label, path in (("MCP SDK alone (Server.run), no-op tool", sdk_path),
                                ("hub door session, no-op tool", door_path)):
                lat, wall = await run_clients([path] * n, per, get, mcp=True)
                rate = len(lat) / wall
                print(f"{label:<44} {n:>7} {pct(lat, 50) * 1e3:>9.3f} {pct(lat, 99) * 1e3:>9.3f} {rate:>9.0f} {echo_rate / rate:>7.0f}x")
            doors = [str(ws.ipc_dir(f"a{i}") / "mcp.sock") for i in range(n)]
            for label, make in (
                ("hub get_messages", lambda i, k: {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "get_messages", "arguments": {"limit": 10}}}),
                ("hub send_message", lambda i, k: {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "send_message", "arguments": {"to": f"a{(i + 1) % most}", "body": f"m{k}"}}}),
            ):
                lat, wall = await run_clients(doors, per, make, mcp=True)
                rate = len(lat) / wall
                print(f"{label:<44} {n:>7} {pct(lat, 50) * 1e3:>9.3f} {pct(lat, 99) * 1e3:>9.3f} {rate:>9.0f} {echo_rate / rate:>7.0f}x")
            lat, wall = await run_sdk_clients(doors, per)
            rate = len(lat) / wall
            print(f"{'hub get_messages, SDK client (mcp.Client)':<44} {n:>7} {pct(lat, 50) * 1e3:>9.3f} {pct(lat, 99) * 1e3:>9.3f} {rate:>9.0f} {echo_rate / rate:>7.0f}x")
        print(f"(median of all echo round trips: {statistics.median(echo_lat) * 1e3:.3f} ms; each hub call also leaves an audit event)")
    finally:
        for p in (echo, sdk, door, hub):
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="calls per client with 1 client (split across clients otherwise)")
    parser.add_argument("--clients", default="1,20", help="comma-separated concurrent client counts")
    parser.add_argument("--serve-echo", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--serve-sdk", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--serve-door", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--serve-hub", nargs=2, metavar=("ROOT", "AGENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        asyncio.run(serve_echo(args.serve_echo))
    elif args.serve_sdk:
        asyncio.run(serve_sdk(args.serve_sdk))
    elif args.serve_door:
        asyncio.run(serve_door(args.serve_door))
    elif args.serve_hub:
        asyncio.run(serve_hub(args.serve_hub[0], int(args.serve_hub[1])))
    else:
        asyncio.run(main_bench(args.calls, [int(x) for x in args.clients.split(",")]))


if __name__ == "__main__":
    main()
