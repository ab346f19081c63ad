"""Messages: direct, broadcast, priorities, threads, read state, limits; bad input changes nothing."""

from __future__ import annotations

import pytest

from qms import MAX_MESSAGE_BYTES
from qms.errors import InvalidInput, NotFound, TooLarge


async def test_direct_message_is_stored_and_announced(store):
    [m] = await store.send_message("alice", "bob", "hello bob", thread="t-1")
    assert (m.sender, m.recipient, m.body, m.priority, m.thread, m.read_at) == (
        "alice", "bob", "hello bob", "normal", "t-1", None
    )
    assert await store.get_message(m.id) == m
    ev = (await store.events_after(0, kinds="message.sent"))[-1]
    assert (ev.actor, ev.subject, ev.detail["id"], ev.detail["preview"]) == ("alice", "bob", m.id, "hello bob")


async def test_broadcast_reaches_every_agent_but_the_sender(store):
    msgs = await store.send_message("alice", "*", "standup", priority="high")
    assert sorted(m.recipient for m in msgs) == ["bob", "carol", "dave"]
    assert all(m.body == "standup" and m.priority == "high" for m in msgs)
    assert await store.inbox("alice") == []
    from_operator = await store.send_message("operator", "*", "all hands")
    assert sorted(m.recipient for m in from_operator) == ["alice", "bob", "carol", "dave"]


async def test_inbox_orders_priority_then_age_and_tracks_reading(store):
    low = (await store.send_message("alice", "bob", "low", priority="low"))[0]
    n1 = (await store.send_message("carol", "bob", "n1"))[0]
    high = (await store.send_message("dave", "bob", "high", priority="high"))[0]
    n2 = (await store.send_message("alice", "bob", "n2"))[0]
    assert [m.id for m in await store.inbox("bob")] == [high.id, n1.id, n2.id, low.id]
    assert await store.unread_counts() == {"operator": 0, "alice": 0, "bob": 4, "carol": 0, "dave": 0}
    assert await store.mark_read("bob", [n1.id, high.id, high.id]) == 2
    assert await store.mark_read("bob", [n1.id]) == 0  # already read
    assert [m.id for m in await store.inbox("bob", unread_only=True)] == [n2.id, low.id]
    assert [m.id for m in await store.inbox("bob", limit=1)] == [high.id]
    assert (await store.get_message(n1.id)).read_at is not None
    assert (await store.unread_counts())["bob"] == 2
    ev = (await store.events_after(0, kinds="message.read"))[-1]
    assert (ev.actor, ev.detail["ids"]) == ("bob", sorted([n1.id, high.id]))


async def test_mark_read_touches_only_the_recipients_own_messages(store):
    [to_bob] = await store.send_message("alice", "bob", "for bob")
    assert await store.mark_read("carol", [to_bob.id, 999999]) == 0
    assert (await store.get_message(to_bob.id)).read_at is None


async def test_operator_has_an_inbox_and_can_message_any_agent(store):
    [m] = await store.send_message("bob", "operator", "need a decision")
    assert [x.id for x in await store.inbox("operator")] == [m.id]
    for name in ("alice", "bob", "carol", "dave"):
        assert (await store.send_message("operator", name, "hi"))[0].recipient == name


async def test_body_at_the_limit_is_accepted_and_multibyte_counts_bytes(store, snapshot):
    body = "x" * MAX_MESSAGE_BYTES
    assert (await store.send_message("alice", "bob", body))[0].body == body
    before = snapshot()
    with pytest.raises(TooLarge) as info:
        await store.send_message("alice", "bob", "é" * (MAX_MESSAGE_BYTES // 2 + 1))
    assert "limit is 65536 bytes" in str(info.value) and "\n" not in str(info.value)
    assert snapshot() == before


async def test_escape_sequences_in_bodies_are_stored_verbatim(store):
    body = "line1\nline2 \x1b[31mred\x1b[0m \x07"
    [m] = await store.send_message("alice", "bob", body)
    assert (await store.get_message(m.id)).body == body


@pytest.mark.parametrize(
    "sender, to, body, kw, error",
    [
        ("alice", "ghost", "hi", {}, NotFound),
        ("alice", "../bob", "hi", {}, InvalidInput),
        ("alice", "bob/x", "hi", {}, InvalidInput),
        ("alice", "bob\x1b[2J", "hi", {}, InvalidInput),
        ("ali\x00ce", "bob", "hi", {}, InvalidInput),
        ("*", "bob", "hi", {}, InvalidInput),
        ("alice", "bob", "x" * (MAX_MESSAGE_BYTES + 1), {}, TooLarge),
        ("alice", "bob", b"bytes", {}, InvalidInput),
        ("alice", "bob", "bad \ud800 surrogate", {}, InvalidInput),
        ("alice", "bob", "hi", {"priority": "urgent"}, InvalidInput),
        ("alice", "bob", "hi", {"thread": "t\x1b]52;c;AAAA\x07"}, InvalidInput),
        ("alice", "bob", "hi", {"thread": "t" * 201}, InvalidInput),
    ],
)
async def test_bad_sends_change_nothing(store, snapshot, sender, to, body, kw, error):
    before = snapshot()
    with pytest.raises(error) as info:
        await store.send_message(sender, to, body, **kw)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert snapshot() == before


async def test_batch_is_all_or_nothing(store, snapshot):
    msgs = await store.send_messages_batch(
        "alice", [("bob", "one"), {"to": "carol", "body": "two", "priority": "high", "thread": "x"}, ("*", "three")]
    )
    assert [(m.recipient, m.body) for m in msgs] == [
        ("bob", "one"), ("carol", "two"), ("bob", "three"), ("carol", "three"), ("dave", "three")
    ]
    before = snapshot()
    with pytest.raises(NotFound):
        await store.send_messages_batch("alice", [("bob", "fine"), ("ghost", "not fine")])
    with pytest.raises(TooLarge):
        await store.send_messages_batch("alice", [("bob", "fine"), ("bob", "x" * (MAX_MESSAGE_BYTES + 1))])
    with pytest.raises(InvalidInput):
        await store.send_messages_batch("alice", [("bob",)])
    assert snapshot() == before


async def test_unknown_message_and_inbox(store):
    with pytest.raises(NotFound, match="no message with id 4242"):
        await store.get_message(4242)
    with pytest.raises(NotFound, match="ghost"):
        await store.inbox("ghost")
    with pytest.raises(InvalidInput):
        await store.mark_read("bob", ["1"])


async def test_concurrent_batches_from_separate_connections_get_their_own_ids(store, db_path):
    import asyncio

    from qms import Store

    others = [await Store.open(db_path) for _ in range(6)]
    try:
        results = await asyncio.gather(*(
            s.send_messages_batch(f"agent{i}", [("bob", f"{i}:{k}") for k in range(30)] + [("*", f"{i}:all")])
            for i, s in enumerate(others)
        ))
        ids = [m.id for batch in results for m in batch]
        assert len(ids) == len(set(ids)) == 6 * (30 + 4)
        for i, batch in enumerate(results):
            for m in batch:
                stored = await store.get_message(m.id)
                assert stored == m and stored.sender == f"agent{i}" and stored.body.startswith(f"{i}:")
        sent = {e.detail["id"]: e.subject for e in await store.events_after(0, kinds="message.sent", limit=10_000)}
        assert all(sent[m.id] == m.recipient for batch in results for m in batch)
    finally:
        for s in others:
            await s.close()


async def test_a_failing_transaction_on_the_writer_thread_rolls_back(store, snapshot):
    before = snapshot()

    def boom(conn):
        conn.execute("DELETE FROM agents")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.write_sync(boom)
    assert snapshot() == before
    assert await store.write_sync(lambda conn: conn.execute("SELECT COUNT(*) FROM agents").fetchone()[0]) == 4
