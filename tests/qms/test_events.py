"""Events: appended with each change, read after the last id seen, filtered by kind/subject/actor."""

from __future__ import annotations

import pytest

from qms.errors import InvalidInput


async def test_readers_see_only_newer_events_in_order(store):
    start = await store.last_event_id()
    a = await store.append_event("hub", "hub.call", "bob", {"tool": "send_message"})
    b = await store.append_event("hub", "hub.denied", "carol", {"tool": "delegate"})
    await store.send_message("alice", "bob", "hi")
    new = await store.events_after(start)
    assert [e.id for e in new][:2] == [a, b] and [e.kind for e in new] == ["hub.call", "hub.denied", "message.sent"]
    assert new[0].detail == {"tool": "send_message"} and isinstance(new[0].at, float)
    assert await store.events_after(await store.last_event_id()) == []
    assert [e.id for e in await store.events_after(start, limit=1)] == [a]


async def test_filters(store):
    start = await store.last_event_id()
    await store.append_event("hub", "hub.call", "bob")
    await store.append_event("hub", "hub.denied", "bob")
    await store.append_event("dispatch", "chat.reply", "c1")
    await store.append_event("dispatch", "hubx.other", "c1")
    assert [e.kind for e in await store.events_after(start, kinds=["hub.*"])] == ["hub.call", "hub.denied"]
    assert [e.kind for e in await store.events_after(start, kinds="hub")] == ["hub.call", "hub.denied"]
    assert [e.kind for e in await store.events_after(start, kinds=["hub.denied", "chat.reply"])] == [
        "hub.denied", "chat.reply"
    ]
    assert await store.events_after(start, kinds=[]) == []
    assert [e.kind for e in await store.events_after(start, subject="c1")] == ["chat.reply", "hubx.other"]
    assert [e.subject for e in await store.events_after(start, actor="hub")] == ["bob", "bob"]


async def test_every_change_writes_its_event_in_the_same_transaction(store):
    start = await store.last_event_id()
    doc = await store.create_document("alice", "SOP", "T")
    await store.checkout(doc.id, "alice")
    await store.checkin(doc.id, "alice", "x")
    await store.route(doc.id, "alice", "review", ["bob"])
    kinds = [e.kind for e in await store.events_after(start)]
    assert kinds == ["doc.created", "doc.checkout", "doc.checkin", "message.sent", "doc.routed", "doc.state"]


async def test_event_meta_marks_everything_this_instance_writes(store):
    store.event_meta = {"by_operator": True}
    await store.send_message("bob", "alice", "sent by the operator as bob")
    ev = (await store.events_after(0, kinds="message.sent"))[-1]
    assert ev.actor == "bob" and ev.detail["by_operator"] is True


@pytest.mark.parametrize(
    "actor, kind, subject, detail",
    [
        ("hub", "nodots", "x", None),
        ("hub", "Hub.Call", "x", None),
        ("hub", "hub.call\x1b", "x", None),
        ("Hub Agent", "hub.call", "x", None),
        ("hub", "hub.call", "x\x1b[2J", None),
    ],
)
async def test_bad_events_are_refused_and_change_nothing(store, snapshot, actor, kind, subject, detail):
    before = snapshot()
    with pytest.raises(InvalidInput):
        await store.append_event(actor, kind, subject, detail)
    assert snapshot() == before


async def test_bad_read_arguments(store):
    with pytest.raises(InvalidInput):
        await store.events_after(-1)
    with pytest.raises(InvalidInput):
        await store.events_after(0, limit=0)
