"""The one event follower (``qms.follow.EventFollower``) over a real SQLite store: order,
kind filters, every event handed out exactly once across batches while writers append,
a store that is locked for a while, and a clean stop."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from qms.errors import InvalidInput
from qms.follow import EventFollower


async def collect(follower: EventFollower, want: int, timeout: float = 10.0) -> list:
    """Events from the follower until ``want`` arrived (or the timeout)."""
    got = []

    async def run():
        async for batch in follower:
            got.extend(batch)
            if len(got) >= want:
                follower.stop()

    await asyncio.wait_for(run(), timeout)
    return got


async def test_starts_at_the_newest_event_and_hands_out_what_follows_in_order(store):
    await store.append_event("alice", "test.before", "x")
    follower = EventFollower(store, interval=0.02)
    start = await follower.start()
    assert start == await store.last_event_id()
    ids = [await store.append_event("alice", "test.after", f"s{i}") for i in range(5)]
    got = await collect(follower, 5)
    assert [e.id for e in got] == ids
    assert [e.subject for e in got] == [f"s{i}" for i in range(5)]
    assert follower.last == ids[-1]


async def test_kind_filter_exact_and_family(store):
    await store.append_event("alice", "doc.created", "d1")
    await store.append_event("alice", "message.sent", "bob")
    await store.append_event("alice", "doc.state", "d1")
    await store.append_event("alice", "agent.state", "bob")
    family = [e.kind async for b in EventFollower(store, 0, kinds="doc.*").drain() for e in b]
    assert family == ["doc.created", "doc.state"]
    prefix = [e.kind async for b in EventFollower(store, 0, kinds=["doc"]).drain() for e in b]
    assert prefix == family
    exact = [e.kind async for b in EventFollower(store, 0, kinds=["agent.state", "message.sent"]).drain()
             for e in b]
    assert exact == ["message.sent", "agent.state"]
    assert [e async for b in EventFollower(store, 0, kinds=[]).drain() for e in b] == []


async def test_no_event_missed_or_doubled_across_small_batches_while_writers_append(store):
    follower = EventFollower(store, interval=0.01, batch=7)
    await follower.start()
    total = 300

    async def writer(tag: str):
        for i in range(total // 3):
            await store.append_event("alice", "test.load", f"{tag}{i}")
            if i % 10 == 0:
                await asyncio.sleep(0)

    got_task = asyncio.create_task(collect(follower, total, timeout=30))
    await asyncio.gather(writer("a"), writer("b"), writer("c"))
    got = await got_task
    ids = [e.id for e in got]
    assert len(ids) == total and len(set(ids)) == total
    assert ids == sorted(ids)
    rows = await store.query("SELECT id FROM events WHERE kind = 'test.load' ORDER BY id")
    assert ids == [r[0] for r in rows]


async def test_drain_pages_through_everything_then_ends(store):
    for i in range(23):
        await store.append_event("alice", "test.page", str(i))
    follower = EventFollower(store, 0, kinds="test.page", batch=5)
    sizes = [len(b) async for b in follower.drain()]
    assert sizes == [5, 5, 5, 5, 3]
    assert [len(b) async for b in follower.drain()] == []  # nothing new: no batch at all
    await store.append_event("alice", "test.page", "late")
    assert [[e.subject for e in b] async for b in follower.drain()] == [["late"]]


async def test_stop_ends_a_waiting_iteration_at_once(store):
    follower = EventFollower(store, interval=3600)
    batches = []

    async def run():
        async for batch in follower:
            batches.append(batch)

    task = asyncio.create_task(run())
    await asyncio.sleep(0.1)  # it read once and now waits an hour
    assert not task.done()
    follower.stop()
    await asyncio.wait_for(task, 2)  # returns promptly, without cancellation
    assert follower.stopped and batches == []


async def test_changed_gate_skips_reads_until_it_says_yes(store):
    reads = 0
    real = store.events_after

    async def counting(*a, **kw):
        nonlocal reads
        reads += 1
        return await real(*a, **kw)

    store.events_after = counting
    gate = {"open": False}
    follower = EventFollower(store, interval=0.01, changed=lambda: gate["open"])
    await follower.start()
    task = asyncio.create_task(collect(follower, 1))
    await asyncio.sleep(0.2)
    assert reads == 0  # the closed gate kept every read
    await store.append_event("alice", "test.gate", "x")
    await asyncio.sleep(0.1)
    assert reads == 0 and not task.done()
    gate["open"] = True
    got = await task
    assert [e.subject for e in got] == ["x"]


async def test_an_empty_read_after_a_change_looks_once_more(store):
    """The files change a moment before a commit is visible: when the gate says "changed"
    and the read finds nothing, the follower looks once more on the next tick, unasked."""
    answers = [True, True]  # the first look, then one change signalled early
    asked = 0

    def changed() -> bool:
        nonlocal asked
        asked += 1
        return answers.pop(0) if answers else False

    follower = EventFollower(store, interval=0.05, changed=changed)
    await follower.start()
    task = asyncio.create_task(collect(follower, 1))
    while asked < 2:  # the second (signalled) read has run and found nothing
        await asyncio.sleep(0.005)
    await store.append_event("alice", "test.late", "x")  # visible only now
    got = await task
    assert [e.subject for e in got] == ["x"]


async def test_heartbeat_hands_out_empty_batches_when_quiet(store):
    follower = EventFollower(store, interval=0.01, heartbeat=0.05)
    beats = 0
    async for batch in follower:
        assert batch == []
        beats += 1
        if beats == 3:
            follower.stop()
    assert beats == 3


async def test_a_failing_store_is_survived_and_nothing_is_lost(store, db_path):
    """Another process breaks the store for a while (the events table renamed away, so every
    read fails): the follower logs, retries from the same position, and once the table is
    back hands out every event exactly once."""
    errors: list[BaseException] = []
    follower = EventFollower(store, interval=0.02, on_error=errors.append)
    await follower.start()
    first = [await store.append_event("alice", "test.fault", f"a{i}") for i in range(3)]
    got_task = asyncio.create_task(collect(follower, 6, timeout=20))
    for _ in range(100):
        if follower.last == first[-1]:
            break
        await asyncio.sleep(0.02)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("ALTER TABLE events RENAME TO events_away")
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.02)
        assert errors and follower.failures >= 1
        assert not got_task.done()
        other.execute("INSERT INTO events_away (at, actor, kind, subject, detail) "
                      "VALUES (0, 'alice', 'test.fault', 'meanwhile', '{}')")
        other.execute("ALTER TABLE events_away RENAME TO events")
    finally:
        other.close()
    last = [await store.append_event("alice", "test.fault", f"b{i}") for i in range(2)]
    got = await got_task
    assert follower.failures == 0
    meanwhile = (await store.query("SELECT id FROM events WHERE subject = 'meanwhile'"))[0][0]
    assert [e.id for e in got] == first + [meanwhile] + last


def test_refuses_a_bad_start_or_interval(store):
    with pytest.raises(InvalidInput):
        EventFollower(store, -1)
    with pytest.raises(InvalidInput):
        EventFollower(store, interval=0)
