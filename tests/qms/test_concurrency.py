"""Many clients on separate connections race for one document: exactly one wins.

Three ways: Store instances in one event loop, in separate threads (each with its own
loop), and in separate processes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from qms import Store
from qms.errors import Conflict

CLIENTS = 50


def assert_one_winner(results: list[str]) -> None:
    winners = [r for r in results if r.startswith("won:")]
    assert len(winners) == 1, results
    holder = winners[0].split(":", 1)[1]
    losers = [r for r in results if not r.startswith("won:")]
    assert len(losers) == len(results) - 1
    for r in losers:
        assert r.startswith("conflict:") and f"is held by {holder} until" in r, r


async def race(store: Store, doc_id: str, name: str) -> str:
    try:
        doc = await store.checkout(doc_id, name)
        return f"won:{doc.holder}"
    except Conflict as exc:
        return f"conflict:{exc}"


async def make_doc(db_path) -> str:
    s = await Store.open(db_path)
    doc = await s.create_document("operator", "SOP", "contested")
    await s.close()
    return doc.id


async def test_fifty_stores_in_one_loop(db_path):
    doc_id = await make_doc(db_path)
    stores = await asyncio.gather(*(Store.open(db_path) for _ in range(CLIENTS)))
    try:
        results = await asyncio.gather(*(race(s, doc_id, f"agent{i}") for i, s in enumerate(stores)))
        assert_one_winner(results)
        holder = results[[r.startswith("won:") for r in results].index(True)][4:]
        assert (await stores[0].get_document(doc_id)).holder == holder
        checkouts = await stores[0].events_after(0, kinds="doc.checkout")
        assert [e.actor for e in checkouts] == [holder]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


def test_fifty_threads_each_with_its_own_loop(db_path):
    doc_id = asyncio.run(make_doc(db_path))
    barrier = threading.Barrier(CLIENTS)
    results: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        async def main() -> str:
            s = await Store.open(db_path)
            try:
                await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 60)
                return await race(s, doc_id, f"agent{i}")
            finally:
                await s.close()

        r = asyncio.run(main())
        with lock:
            results.append(r)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == CLIENTS
    assert_one_winner(results)


CLIENT_SCRIPT = r"""
import asyncio, os, sys, time
from qms import Store
from qms.errors import Conflict

async def main():
    path, doc_id, name, go = sys.argv[1:5]
    s = await Store.open(path)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.005)
    try:
        doc = await s.checkout(doc_id, name)
        print("won:" + doc.holder, flush=True)
    except Conflict as exc:
        print("conflict:" + str(exc), flush=True)
    await s.close()

asyncio.run(main())
"""


def test_fifty_processes(db_path, tmp_path):
    doc_id = asyncio.run(make_doc(db_path))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT_SCRIPT, str(db_path), doc_id, f"agent{i}", str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(CLIENTS)
    ]
    try:
        for p in procs:  # every client has its connection open before the start signal
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            results.append(out.strip())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert_one_winner(results)


WRITER_SCRIPT = r"""
import asyncio, sys
from qms import Store

async def main():
    path, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = await Store.open(path)
    for i in range(n):
        await s.send_message(me, "sink", f"{me}:{i}")
        if i % 10 == 0:  # readers and other writers interleave: the TUI, hub and CLI all do this
            mine = await s.inbox(me, unread_only=True)
            await s.mark_read(me, [m.id for m in mine])
            await s.send_messages_batch(me, [(me, f"note {i}")])
    await s.close()
    print("done", flush=True)

asyncio.run(main())
"""


def test_several_processes_writing_and_reading_at_once_lose_nothing(db_path):
    async def setup():
        s = await Store.open(db_path)
        for name in ("sink", *(f"w{i}" for i in range(6))):
            await s.upsert_agent(name, path=name, tier=0)
        await s.close()

    asyncio.run(setup())
    n = 120
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(db_path), f"w{i}", str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(6)
    ]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0 and out.strip() == "done", err

    async def check():
        s = await Store.open(db_path)
        try:
            bodies = {m.body for m in await s.inbox("sink", limit=10_000)}
            assert bodies == {f"w{i}:{k}" for i in range(6) for k in range(n)}
            for i in range(6):  # each writer's own notes: all there, all but the last read
                notes = await s.inbox(f"w{i}", limit=10_000)
                assert len(notes) == n // 10 and sum(m.read_at is None for m in notes) == 1
            sent = await s.events_after(0, kinds="message.sent", limit=100_000)
            assert len(sent) == 6 * n + 6 * (n // 10)
        finally:
            await s.close()

    asyncio.run(check())
