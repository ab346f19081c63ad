"""Events in words (``qms.event_words``), read from the events a real store writes."""

from __future__ import annotations

import time

from qms import inbound
from qms.event_words import describe, event_words
from qms.search import search


async def test_a_document_life_reads_as_sentences(store):
    doc = await store.create_document("alice", "SOP", "Backups", "v1\n")
    await store.checkout(doc.id, "alice")
    await store.checkin(doc.id, "alice", "v2\n", note="more")
    await store.route(doc.id, "alice", "review", ["bob"])
    await store.review(doc.id, "bob", "request-updates", "say where")
    await store.send_message("alice", "bob", "fixed\nnow")
    lines = [describe(e) for e in await store.events_after(0) if e.kind.split(".")[0] in ("doc", "message")]
    assert lines[:3] == [f'alice created {doc.id} "Backups"', f"alice checked out {doc.id}",
                         f"alice checked in {doc.id} v2"]
    assert f"{doc.id} went from DRAFT to IN_REVIEW" in lines
    assert f"alice routed {doc.id} v2 for review to bob" in lines
    assert f'bob requested updates to {doc.id} v2: "say where"' in lines
    assert f"{doc.id} went from IN_REVIEW to DRAFT (updates requested)" in lines
    assert 'alice wrote to bob: "fixed now"' in lines


def test_unknown_kinds_and_odd_details_read_plainly():
    assert event_words("x.new", "alice", "thing", {"a": 1}) == "alice x.new thing"
    assert event_words("doc.checkin", "alice", "SOP-001", None) == "alice checked in SOP-001"
    assert event_words("doc.routed", "alice", "SOP-001", {"assignees": "not a list"}).startswith("alice routed")
    long = event_words("message.sent", "a", "b", {"preview": "x" * 500})
    assert len(long) < 100 and long.endswith('…"')


async def test_search_finds_messages_and_documents_literally(store):
    await store.send_message("alice", "bob", "the 100% tape plan")
    await store.send_message("alice", "bob", "lunch")
    doc = await store.create_document("bob", "SOP", "Tape rotation", "weekly\n")
    hits = await search(store, "tape")
    assert sorted((h.kind, h.ref) for h in hits)[0] == ("document", doc.id)
    assert {h.kind for h in hits} == {"document", "message"}
    assert [h.snippet for h in await search(store, "100%")] == ["the 100% tape plan"]
    assert await search(store, "_") == []  # LIKE's wildcards are literal


async def test_last_inbound_per_channel(store):
    await inbound.store_arrivals(store, [
        inbound.Arrival("tg", "telegram", "1", "tg:1", "first"),
        inbound.Arrival("mx", "matrix", "1", "mx:1", "other"),
        inbound.Arrival("tg", "telegram", "2", "tg:1", "last"),
    ], now=time.time())
    last = await inbound.last_inbound(store)
    assert {k: v.text for k, v in last.items()} == {"tg": "last", "mx": "other"}
