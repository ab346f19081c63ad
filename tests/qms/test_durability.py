"""An acknowledged message survives SIGKILL of the process that sent it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from qms import Store

SENDER = r"""
import asyncio, sys
from qms import Store

async def main():
    path, mode = sys.argv[1], sys.argv[2]
    s = await Store.open(path)
    await s.upsert_agent("sink", path="sink", tier=0)
    if mode == "concurrent":  # 8 senders sharing one Store: their writes are group-committed
        async def sender(k):
            n = 0
            while True:
                n += 1
                [m] = await s.send_message("operator", "sink", f"message {k}.{n}")
                sys.stdout.write(f"{m.id}\n")  # acknowledged (after its group's commit): only now say so
                sys.stdout.flush()
        await asyncio.gather(*(sender(k) for k in range(8)))
    n = 0
    while True:
        n += 1
        if mode == "single":
            msgs = await s.send_message("operator", "sink", f"message {n}")
        else:
            msgs = await s.send_messages_batch("operator", [("sink", f"message {n}.{i}") for i in range(20)])
        # acknowledged: only now say so
        sys.stdout.write("".join(f"{m.id}\n" for m in msgs))
        sys.stdout.flush()

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["single", "batch", "concurrent"])
async def test_every_acknowledged_message_is_there_after_sigkill(tmp_path, mode):
    path = tmp_path / "crowd.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(path), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    acked: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        assert len(acked) >= 300, proc.stderr.read()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    acked += [int(x) for x in proc.stdout.read().split()]  # lines printed before the kill
    proc.stdout.close()
    proc.stderr.close()

    store = await Store.open(path)
    try:
        assert (await store.query("PRAGMA integrity_check"))[0][0] == "ok"
        stored = {r[0] for r in await store.query("SELECT id FROM messages WHERE recipient = 'sink'")}
        missing = sorted(set(acked) - stored)
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
        # each stored message has its event (same transaction)
        events = {e.detail["id"] for e in await store.events_after(0, kinds="message.sent", limit=100_000)}
        assert stored == events
        # and the store still takes writes
        assert (await store.send_message("operator", "sink", "after the crash"))[0].id > max(acked)
    finally:
        await store.close()
