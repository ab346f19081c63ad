"""Store throughput beside a bare SQLite insert loop, same pragmas, same machine, same run.

    .venv/bin/python bench/store.py [--seconds S] [--batch N] [--dir DIR]

Measures messages/s for:
  - durable single sends: ``Store.send_message`` (one BEGIN IMMEDIATE transaction,
    message row + event row, COMMIT with synchronous=FULL) awaited one after another;
  - batched sends: ``Store.send_messages_batch`` with N messages per transaction;
and the same two shapes with the plain ``sqlite3`` module (one INSERT per COMMIT, and
N INSERTs per COMMIT) on a file with the same pragmas (WAL, synchronous=FULL); plus,
to show where the batched gap comes from, plain sqlite3 writing exactly the rows the
store writes (message + event, the store's schema and indexes). Bare and store runs
alternate for several rounds and medians are compared, since fsync time on a shared
machine varies a lot. Prints the figures and the ratios. Each database lives in a fresh folder on the
disk the workspace would use (default: a temporary folder next to this script), since
a tmpfs would hide the cost of fsync.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qms import Store  # noqa: E402
from qms.db import discover_migrations  # noqa: E402

BODY = "benchmark message body " * 4  # ~90 bytes, a typical short agent message


def bare_connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=30000")
    con.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, sender TEXT, recipient TEXT,"
        " body TEXT, created_at REAL)"
    )
    return con


def bare_single(path: Path, seconds: float) -> tuple[int, float]:
    con = bare_connect(path)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "INSERT INTO messages (sender, recipient, body, created_at) VALUES (?, ?, ?, ?)",
            ("operator", "sink", BODY, time.time()),
        )
        con.execute("COMMIT")
        n += 1
    con.close()
    return n, elapsed


def bare_batch(path: Path, seconds: float, batch: int) -> tuple[int, float]:
    con = bare_connect(path)
    n, start = 0, time.perf_counter()
    rows = [("operator", "sink", BODY, 0.0)] * batch
    while (elapsed := time.perf_counter() - start) < seconds:
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO messages (sender, recipient, body, created_at) VALUES (?, ?, ?, ?)", rows)
        con.execute("COMMIT")
        n += batch
    con.close()
    return n, elapsed


def same_rows_batch(path: Path, seconds: float, batch: int) -> tuple[int, float]:
    """Plain sqlite3 writing what the store writes: the store's schema and indexes, a message
    row plus a ``message.sent`` event row per message, ``batch`` messages per commit."""
    con = sqlite3.connect(str(path), isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    for m in discover_migrations():
        con.executescript(m.path.read_text())
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        now = time.time()
        con.execute("BEGIN IMMEDIATE")
        before = con.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
        con.executemany(
            "INSERT INTO messages (sender, recipient, body, priority, prio_rank, thread, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [("operator", "sink", BODY, "normal", 1, None, now)] * batch,
        )
        con.executemany(
            "INSERT INTO events (at, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)",
            [(now, "operator", "message.sent", "sink", f'{{"id": {before + i + 1}}}') for i in range(batch)],
        )
        con.execute("COMMIT")
        n += batch
    con.close()
    return n, elapsed


async def store_single(path: Path, seconds: float) -> tuple[int, float]:
    store = await Store.open(path)
    await store.upsert_agent("sink", path="sink", tier=0)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        await store.send_message("operator", "sink", BODY)
        n += 1
    await store.close()
    return n, elapsed


async def store_batch(path: Path, seconds: float, batch: int) -> tuple[int, float]:
    store = await Store.open(path)
    await store.upsert_agent("sink", path="sink", tier=0)
    items = [("sink", BODY)] * batch
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        n += len(await store.send_messages_batch("operator", items))
    await store.close()
    return n, elapsed


async def store_concurrent(path: Path, seconds: float, clients: int) -> tuple[int, float]:
    """``clients`` Store instances (separate connections) sending at once: lock contention."""
    stores = [await Store.open(path) for _ in range(clients)]
    await stores[0].upsert_agent("sink", path="sink", tier=0)
    counts = [0] * clients
    start = time.perf_counter()

    async def run(i: int) -> None:
        while time.perf_counter() - start < seconds:
            await stores[i].send_message("operator", "sink", BODY)
            counts[i] += 1

    await asyncio.gather(*(run(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    for s in stores:
        await s.close()
    return sum(counts), elapsed


async def store_shared(path: Path, seconds: float, senders: int) -> tuple[int, float]:
    """``senders`` concurrent senders on one Store (as the hub's agents are): group commit."""
    store = await Store.open(path)
    await store.upsert_agent("sink", path="sink", tier=0)
    counts = [0] * senders
    start = time.perf_counter()

    async def run(i: int) -> None:
        while time.perf_counter() - start < seconds:
            await store.send_message("operator", "sink", BODY)
            counts[i] += 1

    await asyncio.gather(*(run(i) for i in range(senders)))
    elapsed = time.perf_counter() - start
    await store.close()
    return sum(counts), elapsed


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement (default 2)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating bare/store rounds per shape; medians are compared (default 3)")
    ap.add_argument("--batch", type=int, default=100, help="messages per batch (default 100)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent Store instances (default 8)")
    ap.add_argument("--dir", default=None, help="folder for the databases (default: next to this script)")
    args = ap.parse_args()

    base = Path(args.dir) if args.dir else Path(__file__).resolve().parent
    work = Path(tempfile.mkdtemp(prefix="store-bench-", dir=base))
    t, batch = args.seconds, args.batch
    runs = {
        "bare sqlite3, 1 insert per commit": lambda p: bare_single(p, t),
        "Store.send_message, 1 per transaction": lambda p: asyncio.run(store_single(p, t)),
        f"bare sqlite3, {batch} inserts per commit": lambda p: bare_batch(p, t, batch),
        f"Store.send_messages_batch, {batch} per tx": lambda p: asyncio.run(store_batch(p, t, batch)),
        f"sqlite3 with the store's rows, {batch} per commit": lambda p: same_rows_batch(p, t, batch),
    }
    try:
        print(f"store benchmark: {args.rounds} rounds x {t:.1f} s per figure, batch {batch}, "
              f"body {len(BODY)} bytes, SQLite {sqlite3.sqlite_version}, synchronous=FULL, WAL, in {work}")
        rates: dict[str, list[float]] = {label: [] for label in runs}
        k = 0
        for _ in range(args.rounds):  # alternate bare and store so machine noise hits both alike
            for label, run in runs.items():
                k += 1
                n, elapsed = run(work / f"run{k}.db")
                rates[label].append(n / elapsed)
        for label, xs in rates.items():
            print(f"  {label:<44} {median(xs):>10,.0f} msg/s  (median; runs: "
                  + ", ".join(f"{x:,.0f}" for x in xs) + ")", flush=True)
        n, elapsed = asyncio.run(store_concurrent(work / "concurrent.db", t, args.clients))
        print(f"  {f'Store.send_message, {args.clients} concurrent clients':<44} {n / elapsed:>10,.0f} msg/s")
        sn, selapsed = asyncio.run(store_shared(work / "shared.db", t, args.clients))
        shared = sn / selapsed
        print(f"  {f'Store.send_message, {args.clients} senders on one Store':<44} {shared:>10,.0f} msg/s"
              "  (group commit; the hub's case)")

        m = {label: median(xs) for label, xs in rates.items()}
        single = m["Store.send_message, 1 per transaction"] / m["bare sqlite3, 1 insert per commit"]
        batched = m[f"Store.send_messages_batch, {batch} per tx"] / m[f"bare sqlite3, {batch} inserts per commit"]
        gain = m[f"Store.send_messages_batch, {batch} per tx"] / m["Store.send_message, 1 per transaction"]
        print("ratios (medians):")
        print(f"  durable single sends: store / bare sqlite3 = {single:.2f}")
        print(f"  batched sends:        store / bare sqlite3 = {batched:.2f}")
        same = (m[f"Store.send_messages_batch, {batch} per tx"]
                / m[f"sqlite3 with the store's rows, {batch} per commit"])
        print(f"  batched sends: store / sqlite3 writing the same rows and indexes = {same:.2f}")
        print(f"  store batched / store single               = {gain:.1f}x")
        print(f"  {args.clients} senders on one Store / store single     = "
              f"{shared / m['Store.send_message, 1 per transaction']:.1f}x  (goal >= 4x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
