"""Group commit: writes that arrive together share one transaction; each caller is
answered after the commit that holds its write, and a failing write fails alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from qms import Store


@pytest.fixture
async def store(tmp_path):
    s = await Store.open(tmp_path / "crowd.db")
    await s.upsert_agent("sink", path="sink", tier=0)
    yield s
    await s.close()


async def test_concurrent_writes_share_transactions_and_a_failure_stays_alone(store, tmp_path):
    commits: list[int] = []
    await store._writer.set_trace_callback(lambda sql: commits.append(1) if sql.strip().upper() == "COMMIT" else None)

    def job(i: int):
        def run(c: sqlite3.Connection):
            c.execute("INSERT INTO events (at, actor, kind, subject, detail) VALUES (0, 'sink', 'test.job', ?, '{}')",
                      (str(i),))
            if i % 7 == 3:
                raise ValueError(f"job {i} refuses")
            return i
        return run

    results = await asyncio.gather(*(store.write_sync(job(i)) for i in range(60)), return_exceptions=True)
    await store._writer.set_trace_callback(None)
    failed = [i for i, r in enumerate(results) if isinstance(r, ValueError)]
    assert failed == [i for i in range(60) if i % 7 == 3]
    assert [r for r in results if not isinstance(r, Exception)] == [i for i in range(60) if i % 7 != 3]
    rows = await store.query("SELECT subject FROM events WHERE kind = 'test.job' ORDER BY id")
    assert [int(r[0]) for r in rows] == [i for i in range(60) if i % 7 != 3]  # a failed job left nothing
    assert 1 <= len(commits) < 60 / 2, f"{len(commits)} commits for 60 concurrent writes"


async def test_nobody_is_answered_before_the_commit(store, tmp_path):
    """Each caller, once answered, finds its write in a separate connection (committed)."""
    reader = sqlite3.connect(tmp_path / "crowd.db")
    try:
        async def send(i: int):
            [m] = await store.send_message("operator", "sink", f"m{i}")
            return reader.execute("SELECT body FROM messages WHERE id = ?", (m.id,)).fetchone()

        seen = await asyncio.gather(*(send(i) for i in range(40)))
        assert sorted(r[0] for r in seen) == sorted(f"m{i}" for i in range(40))
    finally:
        reader.close()


async def test_a_caller_cancelled_while_waiting_does_not_undo_the_write(store):
    task = asyncio.create_task(store.send_message("operator", "sink", "still sent"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.close()  # close waits for what was accepted
    reopened = await Store.open(store.path)
    try:
        assert [m.body for m in await reopened.inbox("sink")] in ([], ["still sent"])
    finally:
        await reopened.close()


async def test_writes_during_a_commit_are_queued_on_the_writers_thread_as_one_group(store):
    """Writes that arrive while a group runs join the next group, already queued on the
    writer's thread: it commits them without waiting for the event loop."""
    busy, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(10)

    held = asyncio.ensure_future(store.write_sync(hold))
    assert await asyncio.to_thread(busy.wait, 10)
    commits: list[int] = []
    tracing = store._writer.submit(lambda conn: conn.set_trace_callback(
        lambda sql: commits.append(1) if sql.strip().upper() == "COMMIT" else None))
    sends = [asyncio.ensure_future(store.send_message("operator", "sink", f"m{i}")) for i in range(10)]
    await asyncio.sleep(0.05)
    threading.Timer(0.05, release.set).start()
    time.sleep(0.5)  # the loop stands still; the writer's thread commits the queued group by itself
    assert len(commits) == 1
    assert not any(s.done() for s in sends)  # answered only by the loop, after that commit
    await held
    await tracing
    sent = await asyncio.gather(*sends)
    await store._writer.set_trace_callback(None)
    assert [m.body for [m] in sent] == [f"m{i}" for i in range(10)]
    assert [m.body for m in await store.inbox("sink")] == [f"m{i}" for i in range(10)]


async def test_a_body_waits_for_the_groups_on_the_writers_thread(store):
    """``write()`` bodies have the writer to themselves: a group queued before one commits first,
    and jobs after it wait for it."""
    order: list[str] = []
    busy, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(10)
        order.append("held")

    async def body() -> None:
        async with store.write() as db:
            order.append("body")
            await db.execute("INSERT INTO events (at, actor, kind, subject, detail) VALUES (0, 'sink', 'test.b', '', '{}')")

    held = asyncio.ensure_future(store.write_sync(hold))
    assert await asyncio.to_thread(busy.wait, 10)
    before = asyncio.ensure_future(store.write_sync(lambda conn: order.append("before")))
    await asyncio.sleep(0.01)
    in_body = asyncio.ensure_future(body())
    await asyncio.sleep(0.01)
    after = asyncio.ensure_future(store.write_sync(lambda conn: order.append("after")))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(held, before, in_body, after)
    assert order == ["held", "before", "body", "after"]
