"""One write path: ``write()`` bodies and ``write_sync`` jobs go through one queue, one
committer and one writer connection on one thread, in the order they arrived."""

from __future__ import annotations

import asyncio
import threading

import pytest

from qms.quotas import QuotaExceeded


async def test_both_kinds_of_write_run_on_the_one_writer_thread(store):
    threads: set[str] = set()
    await store._writer.set_trace_callback(lambda sql: threads.add(threading.current_thread().name))
    async with store.write() as db:
        await db.execute("UPDATE agents SET description = 'a' WHERE name = 'alice'")
    await store.write_sync(lambda conn: conn.execute("UPDATE agents SET description = 'b' WHERE name = 'bob'"))
    await store.send_message("operator", "bob", "hi")
    await store._writer.set_trace_callback(None)
    assert len(threads) == 1 and next(iter(threads)).startswith("qms-writer"), threads
    assert threading.current_thread().name not in threads


async def test_writes_commit_in_the_order_they_arrived(store):
    """A body that holds its transaction keeps the jobs queued behind it waiting, and the
    jobs that arrived before it are committed first."""
    order: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def body():
        async with store.write() as db:
            await db.execute("INSERT INTO events (at, actor, kind, subject, detail) VALUES (0, 'x', 'test.body', '', '{}')")
            inside.set()
            await release.wait()
        order.append("body")

    async def job(name: str):
        await store.write_sync(lambda conn: conn.execute(
            "INSERT INTO events (at, actor, kind, subject, detail) VALUES (0, 'x', 'test.job', ?, '{}')", (name,)))
        order.append(name)

    first = asyncio.create_task(job("before"))
    holder = asyncio.create_task(body())
    await inside.wait()
    behind = asyncio.create_task(job("after"))
    await asyncio.sleep(0.2)
    assert order == ["before"]  # "after" waits for the body's transaction
    release.set()
    await asyncio.gather(first, holder, behind)
    assert order == ["before", "body", "after"]
    rows = await store.query("SELECT kind, subject FROM events WHERE kind LIKE 'test.%' ORDER BY id")
    assert [tuple(r) for r in rows] == [("test.job", "before"), ("test.body", ""), ("test.job", "after")]


async def test_a_quota_refusal_in_a_body_rolls_back_and_is_recorded(store, snapshot):
    before = snapshot()
    with pytest.raises(QuotaExceeded):
        async with store.write() as db:
            await db.execute("DELETE FROM agents WHERE name = 'alice'")
            raise QuotaExceeded("alice is over", agent="alice", limit="messages_per_minute", detail={"max": 1})
    after = snapshot()
    assert after["agents"] == before["agents"]
    refused = await store.events_after(0, kinds="quota.refused")
    assert [(e.actor, e.subject) for e in refused] == [("alice", "messages_per_minute")]


async def test_a_body_cancelled_before_its_turn_never_runs(store, snapshot):
    before = snapshot()
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder():
        async with store.write():
            inside.set()
            await release.wait()

    async def waiting():
        async with store.write() as db:
            await db.execute("DELETE FROM agents")

    h = asyncio.create_task(holder())
    await inside.wait()
    w = asyncio.create_task(waiting())
    await asyncio.sleep(0.05)
    w.cancel()
    release.set()
    await h
    with pytest.raises(asyncio.CancelledError):
        await w
    assert snapshot() == before
    assert len(await store.send_message("operator", "bob", "still works")) == 1
