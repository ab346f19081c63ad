"""Separation of duties in the document workflow, against a real store file.

Each rule: the refusal (a PermissionDenied naming the rule, with what to do next), nothing
changed but the doc.refused event that records it, and the allowed path next to it.
alice, bob, carol and dave are agents; "operator" is the human.
"""

from __future__ import annotations

import pytest

from qms import Store
from qms.errors import InvalidInput, PermissionDenied
from qms.policy import DocPolicy


async def state(store, doc_id):
    return (await store.get_document(doc_id)).state


async def edit(store, doc_id, who, text):
    await store.checkout(doc_id, who)
    await store.checkin(doc_id, who, text)


@pytest.fixture
def refused(store, snapshot, refusals):
    """``await refused(call, rule, match)``: the call is refused by ``rule`` with a message
    matching ``match``, changes nothing, and adds exactly one doc.refused event for it."""

    async def check(call, rule, match, *, actor=None, doc_id=None):
        before = snapshot(without_refusals=True)
        seen = await refusals()
        with pytest.raises(PermissionDenied, match=match) as info:
            await call
        assert getattr(info.value, "rule", None) == rule
        assert "\n" not in str(info.value)
        assert snapshot(without_refusals=True) == before
        new = (await refusals())[len(seen):]
        assert len(new) == 1 and new[0][3] == rule, new
        if actor is not None:
            assert new[0][0] == actor
        if doc_id is not None:
            assert new[0][1] == doc_id
        return str(info.value)
    return check


# ---- only the author or the operator routes ---------------------------------------------


async def test_only_the_author_or_the_operator_routes(store, refused):
    doc = await store.create_document("alice", "SOP", "Backups", "v1")
    msg = await refused(store.route(doc.id, "bob", "review", ["carol"]), "only-owner-routes",
                        "only its author \\(alice\\) or the operator can route SOP-001, not bob", actor="bob", doc_id=doc.id)
    assert "ask alice to route it" in msg
    await store.route(doc.id, "alice", "review", ["bob"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await refused(store.route(doc.id, "bob", "approval", ["carol"]), "only-owner-routes", "not bob")
    await store.route(doc.id, "operator", "approval", ["carol"])  # the operator may route anyone's
    assert await state(store, doc.id) == "IN_APPROVAL"


async def test_an_editor_who_is_not_the_author_may_not_route(store, refused):
    doc = await store.create_document("operator", "SOP", "Access policy", "operator's text")
    await edit(store, doc.id, "bob", "bob's text")
    await refused(store.route(doc.id, "bob", "review", ["carol"]), "only-owner-routes",
                  "only the operator can route SOP-001, not bob; ask operator to route it")


# ---- the version's author neither reviews nor approves it --------------------------------


async def test_whoever_checked_in_the_version_may_not_review_it(store, refused):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await refused(store.route(doc.id, "alice", "review", ["bob", "alice"]), "author-may-not-review",
                  "alice checked in version 1 of SOP-001 and may not review it; route it to someone else")
    await edit(store, doc.id, "bob", "v2 by bob")  # now bob is the version's author, alice may review
    await refused(store.route(doc.id, "alice", "review", ["bob"]), "author-may-not-review",
                  "bob checked in version 2")
    await store.route(doc.id, "alice", "review", ["alice", "carol"])
    await store.review(doc.id, "alice", "recommend", "bob's edit is fine")
    await store.review(doc.id, "carol", "recommend", "ok")
    assert await state(store, doc.id) == "REVIEWED"


async def test_whoever_checked_in_the_version_may_not_approve_it(store, refused):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await refused(store.route(doc.id, "alice", "approval", ["carol", "alice"]), "author-may-not-approve",
                  "alice checked in version 1 of SOP-001 and may not approve it")
    await store.route(doc.id, "alice", "approval", ["carol"])
    await store.approve(doc.id, "carol")
    assert await state(store, doc.id) == "EFFECTIVE"


async def test_the_operator_is_bound_too(store, refused):
    doc = await store.create_document("operator", "SPEC", "T", "operator's v1")
    await refused(store.route(doc.id, "operator", "review", ["operator"]), "author-may-not-review",
                  "operator checked in version 1")
    await store.route(doc.id, "operator", "review", ["bob"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await refused(store.route(doc.id, "operator", "approval", ["operator"]), "author-may-not-approve",
                  "operator checked in version 1")
    # the operator wrote this version: an agent's approval is enough
    await store.route(doc.id, "operator", "approval", ["carol"])
    await store.approve(doc.id, "carol")
    assert await state(store, doc.id) == "EFFECTIVE"


async def test_a_task_reassigned_to_the_versions_author_is_refused(store, refused):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob"])
    [task] = await store.pending_tasks("bob")
    await refused(store.reassign_task(task.id, "alice"), "author-may-not-review", "alice checked in version 1",
                  actor="operator", doc_id=doc.id)
    await store.reassign_task(task.id, "carol")
    assert [t.doc_id for t in await store.pending_tasks("carol")] == [doc.id]


async def test_an_assignee_who_became_the_versions_author_may_not_act(store, refused):
    """A task from before migration 041's rule (or any path that slipped one in) is still
    checked when the assignee acts: the check runs at review and approval time too."""
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob"])
    async with store.write() as db:  # an old task handed to the version's author
        await db.execute("UPDATE tasks SET assignee = 'alice' WHERE doc_id = ?", (doc.id,))
    msg = await refused(store.review(doc.id, "alice", "recommend", "mine is great"), "author-may-not-review",
                        "alice checked in version 1 of SOP-001 and may not review it")
    assert "ask the operator to reassign the task" in msg


# ---- reviewers and approvers differ ------------------------------------------------------


async def test_a_reviewer_may_not_approve_the_same_version(store, refused):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob", "carol"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await store.review(doc.id, "carol", "recommend", "ok")
    await refused(store.route(doc.id, "alice", "approval", ["dave", "carol"]), "reviewer-may-not-approve",
                  "carol reviewed version 1 of SOP-001 and may not also approve it")
    await store.route(doc.id, "alice", "approval", ["dave"])
    [task] = await store.pending_tasks("dave")
    await refused(store.reassign_task(task.id, "bob"), "reviewer-may-not-approve", "bob reviewed version 1")
    await store.approve(doc.id, "dave")
    assert await state(store, doc.id) == "EFFECTIVE"


async def test_a_reviewer_with_a_slipped_in_approval_task_may_not_approve(store, refused):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await store.route(doc.id, "alice", "approval", ["dave"])
    async with store.write() as db:
        await db.execute("UPDATE tasks SET assignee = 'bob' WHERE doc_id = ? AND kind = 'approval'", (doc.id,))
    await refused(store.approve(doc.id, "bob"), "reviewer-may-not-approve", "bob reviewed version 1")
    assert await state(store, doc.id) == "IN_APPROVAL"


async def test_an_approver_who_rejected_may_not_then_review_the_same_version(store, refused):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await store.route(doc.id, "alice", "approval", ["dave"])
    await store.reject(doc.id, "dave", "no owner named")  # back to IN_REVIEW, bob has a fresh task
    [task] = await store.pending_tasks("bob")
    await refused(store.reassign_task(task.id, "dave"), "reviewer-may-not-approve",
                  "dave approved version 1 of SOP-001 and may not also review it")


async def test_a_new_version_starts_the_duties_afresh(store):
    doc = await store.create_document("alice", "SOP", "T", "v1")
    await store.route(doc.id, "alice", "review", ["bob"])
    await store.review(doc.id, "bob", "request-updates", "add a step")
    await edit(store, doc.id, "alice", "v2")
    await store.route(doc.id, "alice", "review", ["carol"])
    await store.review(doc.id, "carol", "recommend", "ok")
    await store.route(doc.id, "alice", "approval", ["bob"])  # bob reviewed v1, not v2
    await store.approve(doc.id, "bob")
    assert await state(store, doc.id) == "EFFECTIVE"


# ---- the operator's documents need the operator's approval -------------------------------


async def operators_sop_edited_by(store, editor):
    doc = await store.create_document("operator", "SOP", "Access policy", "operator's text")
    await edit(store, doc.id, editor, f"{editor}'s text")
    await store.route(doc.id, "operator", "review", ["carol"])
    await store.review(doc.id, "carol", "recommend", "ok")
    return doc.id


async def test_an_agents_approval_alone_does_not_make_the_operators_document_effective(store, refused):
    doc_id = await operators_sop_edited_by(store, "bob")
    msg = await refused(store.route(doc_id, "operator", "approval", ["dave"]), "operator-approval",
                        "SOP-001 belongs to the operator and version 2 was checked in by someone else")
    assert "add operator to the approvers" in msg
    await store.route(doc_id, "operator", "approval", ["dave", "operator"])
    await store.approve(doc_id, "dave")
    assert await state(store, doc_id) == "IN_APPROVAL"
    await store.approve(doc_id, "operator", "read bob's edit")
    assert await state(store, doc_id) == "EFFECTIVE"


async def test_the_operators_approval_task_cannot_be_moved_to_an_agent(store, refused):
    doc_id = await operators_sop_edited_by(store, "bob")
    await store.route(doc_id, "operator", "approval", ["dave", "operator"])
    [task] = await store.pending_tasks("operator")
    await refused(store.reassign_task(task.id, "alice"), "operator-approval", "the operator's approval task stays")


async def test_the_last_approval_is_refused_when_the_operators_is_missing(store, refused):
    """Defence in depth: however the operator's task went missing, the step to EFFECTIVE
    is refused and says how to get out."""
    doc_id = await operators_sop_edited_by(store, "bob")
    await store.route(doc_id, "operator", "approval", ["dave", "operator"])
    async with store.write() as db:
        await db.execute("UPDATE tasks SET assignee = 'alice' WHERE assignee = 'operator' AND doc_id = ?", (doc_id,))
    await store.approve(doc_id, "dave")
    msg = await refused(store.approve(doc_id, "alice"), "operator-approval", "needs the operator's approval")
    assert "cannot become EFFECTIVE without it; reject it" in msg
    await store.reject(doc_id, "alice", "needs the operator")
    assert await state(store, doc_id) == "IN_REVIEW"


async def test_operator_approval_can_be_turned_off_per_type(db_path):
    s = await Store.open(db_path)
    try:
        for n in ("alice", "bob", "carol", "dave"):
            await s.upsert_agent(n, path=n, tier=0)
        s.doc_policy = DocPolicy.from_config({"SOP": {"operator_approval": False}})
        sop = await operators_sop_edited_by(s, "bob")
        await s.route(sop, "operator", "approval", ["dave"])
        await s.approve(sop, "dave")
        assert await state(s, sop) == "EFFECTIVE"
        spec = (await s.create_document("operator", "SPEC", "T", "v1")).id
        await edit(s, spec, "bob", "v2")
        await s.route(spec, "operator", "review", ["carol"])
        await s.review(spec, "carol", "recommend", "ok")
        with pytest.raises(PermissionDenied, match="needs the operator's approval"):
            await s.route(spec, "operator", "approval", ["dave"])
    finally:
        await s.close()


def test_the_policy_from_crowd_toml():
    assert DocPolicy.from_config(None).operator_approval_for("SOP") is True
    p = DocPolicy.from_config({"operator_approval": False, "CR": {"operator_approval": True}})
    assert (p.operator_approval_for("SOP"), p.operator_approval_for("CR")) == (False, True)
    for bad, match in [
        ({"operator_aproval": True}, "unknown key documents.operator_aproval"),
        ({"SOP": {"approvers": 2}}, "unknown key documents.SOP.approvers"),
        ({"SOP": {"operator_approval": "yes"}}, "must be true or false"),
        ({"sop": {"operator_approval": True}}, "unknown key documents.sop"),
        ("on", "must be a table"),
    ]:
        with pytest.raises(InvalidInput, match=match):
            DocPolicy.from_config(bad)


# ---- the execution cycle -----------------------------------------------------------------


async def test_the_execution_cycle_keeps_the_same_rules(store, refused):
    cr = await store.create_document("operator", "CR", "Upgrade the database", "plan")
    await store.route(cr.id, "operator", "review", ["bob"])
    await store.review(cr.id, "bob", "recommend", "ok")
    await store.route(cr.id, "operator", "approval", ["carol"])  # the operator wrote the plan
    await store.approve(cr.id, "carol")
    assert await state(store, cr.id) == "PRE_APPROVED"
    await store.release(cr.id, "operator")
    await edit(store, cr.id, "dave", "plan\nexecuted by dave: ok")
    # only the owner routes the post-review; the executor neither reviews nor approves its record
    await refused(store.route(cr.id, "dave", "review", ["bob"]), "only-owner-routes", "not dave")
    await refused(store.route(cr.id, "operator", "review", ["dave"]), "author-may-not-review",
                  "dave checked in version 2 of CR-001")
    await store.route(cr.id, "operator", "review", ["bob"])
    assert await state(store, cr.id) == "POST_REVIEW"
    await store.review(cr.id, "bob", "recommend", "results fine")
    await refused(store.route(cr.id, "operator", "approval", ["bob", "operator"]), "reviewer-may-not-approve",
                  "bob reviewed version 2")
    await refused(store.route(cr.id, "operator", "approval", ["carol"]), "operator-approval",
                  "needs the operator's approval")
    await store.route(cr.id, "operator", "approval", ["carol", "operator"])
    await store.approve(cr.id, "carol")
    await store.approve(cr.id, "operator")
    assert await state(store, cr.id) == "POST_APPROVED"


async def test_the_post_cycle_has_its_own_duties_for_an_unchanged_version(store, refused):
    """Nothing checked in during execution: the pre-approver may post-review the record
    (a new cycle), but within the post cycle reviewers and approvers still differ."""
    tp = await store.create_document("alice", "TP", "Restore test", "steps")
    await store.route(tp.id, "alice", "review", ["bob"])
    await store.review(tp.id, "bob", "recommend", "ok")
    await store.route(tp.id, "alice", "approval", ["carol"])
    await store.approve(tp.id, "carol")
    await store.release(tp.id, "alice")
    await store.route(tp.id, "alice", "review", ["carol"])
    await store.review(tp.id, "carol", "recommend", "ran as written")
    await refused(store.route(tp.id, "alice", "approval", ["carol"]), "reviewer-may-not-approve",
                  "carol reviewed version 1 of TP-001")
    await store.route(tp.id, "alice", "approval", ["bob"])
    await store.approve(tp.id, "bob")
    assert await state(store, tp.id) == "POST_APPROVED"


# ---- the reported attack, against the store ----------------------------------------------


async def test_an_agent_alone_cannot_make_its_rewrite_of_the_operators_sop_effective(store, refused):
    doc = await store.create_document("operator", "SOP", "Access policy", "only the operator grants access")
    await edit(store, doc.id, "dave", "everyone may grant access")  # editing stays open to all
    await refused(store.route(doc.id, "dave", "review", ["dave"]), "only-owner-routes", "not dave")
    async with store.write() as db:  # even if dave got a review task somehow, it cannot act on it
        await db.execute("UPDATE documents SET state = 'IN_REVIEW', round = 1 WHERE id = ?", (doc.id,))
        await db.execute("INSERT INTO tasks (doc_id, kind, assignee, round, routed_by, created_at, version, cycle)"
                         " VALUES (?, 'review', 'dave', 1, 'dave', 0, 2, 'pre')", (doc.id,))
    await refused(store.review(doc.id, "dave", "recommend", "lgtm"), "author-may-not-review", "dave checked in")
    final = await store.get_document(doc.id)
    assert (final.state, final.author) == ("IN_REVIEW", "operator")
    assert final.state != "EFFECTIVE"


# ---- tasks made before migration 041 ------------------------------------------------------


async def test_tasks_from_before_migration_041_get_their_version_and_still_count(tmp_path):
    """A store migrated up to 030 with a document mid-workflow: after 041, the old review
    task knows the version it was made for, and its reviewer may not approve that version."""
    import shutil

    from qms.db import MIGRATIONS_DIR, connect, migrate

    old = tmp_path / "old-migrations"
    old.mkdir()
    for f in MIGRATIONS_DIR.glob("*.sql"):
        if int(f.name[:3]) < 41:
            shutil.copy(f, old / f.name)
    path = tmp_path / "crowd.db"
    db = await connect(path)
    try:
        await migrate(db, old)
        for sql, params in [
            ("INSERT INTO agents (name, path, tier, created_at, updated_at) VALUES (?, ?, 0, 0, 0)", ("bob", "bob")),
            ("INSERT INTO agents (name, path, tier, created_at, updated_at) VALUES (?, ?, 0, 0, 0)", ("carol", "carol")),
            ("INSERT INTO documents (id, doc_type, title, state, version, author, created_at, updated_at, round)"
             " VALUES ('SOP-001', 'SOP', 'T', 'REVIEWED', 2, 'alice', 1, 3, 1)", ()),
            ("INSERT INTO doc_versions (doc_id, number, author, created_at, content) VALUES ('SOP-001', 1, 'alice', 1, 'a')", ()),
            ("INSERT INTO doc_versions (doc_id, number, author, created_at, content) VALUES ('SOP-001', 2, 'alice', 2, 'b')", ()),
            ("INSERT INTO tasks (doc_id, kind, assignee, round, routed_by, status, outcome, created_at)"
             " VALUES ('SOP-001', 'review', 'bob', 1, 'alice', 'done', 'recommend', 2.5)", ()),
        ]:
            await db.execute(sql, params)
    finally:
        await db.close()
    s = await Store.open(path)
    try:
        [(version, cycle)] = [tuple(r) for r in await s.query("SELECT version, cycle FROM tasks")]
        assert (version, cycle) == (2, None)
        with pytest.raises(PermissionDenied, match="bob reviewed version 2 of SOP-001"):
            await s.route("SOP-001", "alice", "approval", ["bob"])
        await s.route("SOP-001", "alice", "approval", ["carol"])
    finally:
        await s.close()
