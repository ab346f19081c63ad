"""A `crowdtui hub` killed with -9 loses no audit record older than 100 ms.

Read-only calls are answered before their record is written (``crowdtui.hub.eventlog``).
Here the store's writer is stalled (another connection holds the write lock), so nothing
noted after that point can reach the disk: the hub answers read-only calls only until the
oldest unwritten record is 100 ms old, then holds the next answer. It is then killed. Every
record of a call answered before the stall is on disk; the calls answered during the stall
(whose records died with the hub) were all answered within that 100 ms.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from qms import Store

REPO = Path(__file__).resolve().parents[2]
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fault", "version": "1"}}}
BOUND = 0.1  # crowdtui.hub.eventlog.MAX_LAG
SLACK = 0.15  # scheduling on a busy machine


@pytest.mark.timeout(120)
async def test_a_killed_hub_loses_only_records_of_answers_from_its_last_100_ms(workspace):
    from crowdtui.hub.unix_transport import connect_unix
    from crowdtui.roster import load_roster, sync_roster

    (workspace.agents_dir / "reader").mkdir(parents=True)
    (workspace.agents_dir / "reader" / "AGENT.md").write_text("---\nname: reader\n---\nReads.\n")
    store = await Store.open(workspace.db_path)
    await sync_roster(store, load_roster(workspace))
    await store.set_agent_state("reader", "running")  # the hub opens doors for running agents
    await store.close()
    hub = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "hub",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO)
    blocker = None
    try:
        assert b"serving" in await asyncio.wait_for(hub.stdout.readline(), 60)
        door = workspace.ipc_dir("reader") / "mcp.sock"
        reader, writer = await asyncio.open_unix_connection(sock=connect_unix(door))
        n = 0

        async def call() -> None:
            nonlocal n
            n += 1
            msg = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                   "params": {"name": "get_messages", "arguments": {"limit": 1}}}
            writer.write((json.dumps(msg) + "\n").encode())
            reply = json.loads(await reader.readline())
            assert reply["id"] == n and not reply["result"]["isError"], reply

        writer.write((json.dumps(INIT) + "\n").encode())
        await asyncio.wait_for(reader.readline(), 10)
        writer.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        for _ in range(20):
            await asyncio.wait_for(call(), 10)
        await asyncio.sleep(0.3)  # older than the bound: these records must be on disk now

        blocker = sqlite3.connect(str(workspace.db_path), isolation_level=None, timeout=10)
        blocker.execute("BEGIN IMMEDIATE")  # from here on the hub's writer can commit nothing
        stalled_at = time.monotonic()
        answered_at = []
        while True:
            try:
                await asyncio.wait_for(call(), 1.0)
            except asyncio.TimeoutError:
                break  # held: its record (and the ones before) must reach the disk first
            answered_at.append(time.monotonic())
            assert time.monotonic() - stalled_at < 10, "the hub never held an answer"
        assert answered_at, "no call was answered before the bound was reached"
        assert answered_at[-1] - stalled_at <= BOUND + SLACK, (
            f"answers went on for {answered_at[-1] - stalled_at:.3f} s with records unwritten")
        hub.send_signal(signal.SIGKILL)
        await hub.wait()
        writer.close()
    finally:
        if blocker is not None:
            blocker.execute("ROLLBACK")
            blocker.close()
        if hub.returncode is None:
            hub.kill()
            await hub.wait()
    store = await Store.open(workspace.db_path)
    try:
        records = [e for e in await store.events_after(0, limit=100_000, kinds=["hub.call"]) if e.actor == "reader"]
    finally:
        await store.close()
    assert len(records) == 20, f"{len(records)} records of the 20 calls answered before the stall"
