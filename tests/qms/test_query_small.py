"""``StoreCore.query_small``: a small read on the caller's thread (the hub's inbox read), with
the same answers as the reader's thread, never waiting on a writer, and the usual path taken
from any other thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

INBOX = ("SELECT id, sender, body FROM messages WHERE recipient = ? ORDER BY prio_rank, id LIMIT 10")


async def test_the_same_rows_as_the_reader_thread(store):
    for i in range(15):
        await store.send_message("alice", "bob", f"hello {i}")
    near = [tuple(r) for r in await store.query_small(INBOX, ("bob",))]
    far = [tuple(r) for r in await store.query(INBOX, ("bob",))]
    assert near == far and len(near) == 10 and near[0][2] == "hello 0"
    assert [m.body for m in await store.inbox("bob", limit=3)] == ["hello 0", "hello 1", "hello 2"]
    assert store._near is not None and store._near[0] == threading.get_ident()  # it ran here


async def test_a_writer_holding_its_transaction_does_not_hold_the_read(store, db_path):
    await store.send_message("alice", "bob", "committed")
    other = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO messages (sender, recipient, body, priority, prio_rank, created_at) "
                      "VALUES ('carol', 'bob', 'not yet', 'normal', 1, 0)")
        t0 = time.monotonic()
        rows = await store.query_small(INBOX, ("bob",))
        assert time.monotonic() - t0 < 0.5
        assert [r["body"] for r in rows] == ["committed"]  # the committed state; no wait, no error
        other.execute("COMMIT")
        assert [r["body"] for r in await store.query_small(INBOX, ("bob",))] == ["committed", "not yet"]
    finally:
        other.close()


async def test_another_thread_goes_the_usual_way(store):
    await store.send_message("alice", "bob", "one")
    await store.query_small(INBOX, ("bob",))  # the connection now belongs to this thread
    owner, conn = store._near
    used_from: list[int] = []
    conn.set_trace_callback(lambda sql: used_from.append(threading.get_ident()))
    got: list = []

    def elsewhere() -> None:
        async def read():
            got.append([r["body"] for r in await store.query_small(INBOX, ("bob",))])

        asyncio.run(read())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(10)
    assert got == [["one"]]  # answered, through the reader's thread
    assert used_from == [] and store._near == (owner, conn)  # never this thread's connection
    await store.query_small(INBOX, ("bob",))
    assert used_from == [owner]
