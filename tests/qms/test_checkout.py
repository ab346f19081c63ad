"""Checkout leases: one holder, only the holder checks in, leases expire, the operator breaks locks."""

from __future__ import annotations

import time

import pytest

from qms.errors import Conflict, InvalidInput, PermissionDenied


async def test_checkout_then_checkin_makes_a_new_version_and_frees_it(store):
    doc = await store.create_document("alice", "SOP", "T", "one")
    held = await store.checkout(doc.id, "bob", lease_seconds=60)
    assert held.holder == "bob" and held.is_held() and held.content == "one"
    assert held.lease_expires_at - held.taken_at == pytest.approx(60)
    back = await store.checkin(doc.id, "bob", "two", note="reworded")
    assert (back.version, back.holder, back.lease_expires_at, back.content) == (2, None, None, "two")
    assert [(v.number, v.author, v.note, v.size) for v in await store.versions(doc.id)] == [
        (1, "alice", None, 3), (2, "bob", "reworded", 3)
    ]
    assert (await store.get_document(doc.id, version=1)).content == "one"  # nothing overwritten
    kinds = [e.kind for e in await store.history(doc.id)]
    assert kinds == ["doc.created", "doc.checkout", "doc.checkin"]


async def test_second_checkout_is_a_conflict_naming_holder_and_expiry(store, snapshot):
    doc = await store.create_document("alice", "SOP", "T")
    await store.checkout(doc.id, "alice")
    before = snapshot()
    with pytest.raises(Conflict) as info:
        await store.checkout(doc.id, "bob")
    text = str(info.value)
    assert text.startswith("SOP-001 is held by alice until ") and " UTC; ask them to check in" in text
    assert "operator can break the lock" in text
    assert snapshot() == before
    renewed = await store.checkout(doc.id, "alice", lease_seconds=120)  # the holder may renew
    assert renewed.holder == "alice"


async def test_checkin_by_a_non_holder_is_refused_and_nothing_changes(store, snapshot, refusals):
    doc = await store.create_document("alice", "SOP", "T", "original")
    with pytest.raises(PermissionDenied, match="not checked out; check it out first"):
        await store.checkin(doc.id, "alice", "sneaky")
    await store.checkout(doc.id, "alice")
    before = snapshot(without_refusals=True)
    with pytest.raises(PermissionDenied, match="checked out by alice, not bob"):
        await store.checkin(doc.id, "bob", "sneaky")
    with pytest.raises(PermissionDenied, match="checked out by alice, not bob"):
        await store.cancel_checkout(doc.id, "bob")
    with pytest.raises(InvalidInput):
        await store.checkin(doc.id, "alice", "x" * (1024 * 1024 + 1))
    with pytest.raises(InvalidInput):
        await store.checkin(doc.id, "alice", "fine", note="bad\x1b[1mnote")
    assert snapshot(without_refusals=True) == before  # nothing changed but the refusals' events
    assert (await store.get_document(doc.id)).content == "original"
    assert await refusals() == [("alice", doc.id, "check in", "holder-only"), ("bob", doc.id, "check in", "holder-only"),
                                ("bob", doc.id, "cancel the checkout", "holder-only")]


async def test_cancel_checkout_keeps_the_content(store):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.checkout(doc.id, "alice")
    await store.cancel_checkout(doc.id, "alice")
    after = await store.get_document(doc.id)
    assert (after.holder, after.version, after.content) == (None, 1, "v1")
    await store.checkout(doc.id, "bob")  # free again


async def expire_lease(store, doc_id):
    """Make a held lease run out now (leases are long in tests, so a busy machine cannot
    expire one early): its expiry time moves into the past, as time passing would."""
    async with store.write() as db:
        rows = await db.execute_fetchall(
            "UPDATE documents SET lease_expires_at = ? WHERE id = ? AND holder IS NOT NULL RETURNING id",
            (time.time() - 1, doc_id))
    assert rows, f"{doc_id} was not held"


async def test_an_expired_lease_counts_as_free(store):
    doc = await store.create_document("alice", "SOP", "T")
    await store.checkout(doc.id, "alice", lease_seconds=3600)
    assert (await store.get_document(doc.id)).is_held()
    await expire_lease(store, doc.id)
    assert not (await store.get_document(doc.id)).is_held()
    taken = await store.checkout(doc.id, "bob")
    assert taken.holder == "bob"
    with pytest.raises(PermissionDenied, match="checked out by bob, not alice"):
        await store.checkin(doc.id, "alice", "late")
    await store.checkin(doc.id, "bob", "bob's")


async def test_expired_lease_does_not_block_routing(store):
    doc = await store.create_document("alice", "SOP", "T")
    await store.checkout(doc.id, "alice", lease_seconds=3600)
    with pytest.raises(Conflict, match="checked out by alice"):
        await store.route(doc.id, "alice", "review", ["bob"])
    await expire_lease(store, doc.id)
    await store.route(doc.id, "alice", "review", ["bob"])
    doc = await store.get_document(doc.id)
    assert (doc.state, doc.holder) == ("IN_REVIEW", None)


async def test_only_the_operator_breaks_a_lock(store, snapshot, refusals):
    doc = await store.create_document("alice", "SOP", "T")
    await store.checkout(doc.id, "bob")
    before = snapshot(without_refusals=True)
    with pytest.raises(PermissionDenied, match="only the operator can break a lock"):
        await store.break_lock(doc.id, "alice")
    assert snapshot(without_refusals=True) == before
    assert await refusals() == [("alice", doc.id, "break the lock", "operator-only")]
    await store.break_lock(doc.id, "operator")
    assert (await store.get_document(doc.id)).holder is None
    ev = (await store.history(doc.id))[-1]
    assert (ev.kind, ev.actor, ev.detail["holder"]) == ("doc.lock_broken", "operator", "bob")
    with pytest.raises(InvalidInput, match="not checked out"):
        await store.break_lock(doc.id, "operator")
    with pytest.raises(PermissionDenied):  # bob's lease is gone: his check-in is refused
        await store.checkin(doc.id, "bob", "too late")
