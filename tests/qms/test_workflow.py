"""The document workflow end to end for both kinds, and every illegal transition refused
with nothing changed.

alice writes, bob and carol review, dave approves (the operator sometimes too).
"""

from __future__ import annotations

import pytest

from qms.errors import Conflict, IllegalTransition, InvalidInput, NotFound, PermissionDenied


async def state(store, doc_id):
    return (await store.get_document(doc_id)).state


async def edit(store, doc_id, text, who="alice"):
    await store.checkout(doc_id, who)
    return await store.checkin(doc_id, who, text, note=f"{who} edit")


async def review_round(store, doc_id, outcomes=("recommend", "recommend"), reviewers=("bob", "carol"), author="alice"):
    await store.route(doc_id, author, "review", list(reviewers))
    for who, outcome in zip(reviewers, outcomes):
        await store.review(doc_id, who, outcome, f"{who} says {outcome}")


async def approval_round(store, doc_id, approvers=("dave",), author="alice"):
    await store.route(doc_id, author, "approval", list(approvers))
    for who in approvers:
        await store.approve(doc_id, who, "fine")


async def test_non_executable_document_lifecycle(store):
    doc = await store.create_document("alice", "SOP", "Handling returns")
    assert (doc.id, doc.state, doc.version, doc.content, doc.executable) == ("SOP-001", "DRAFT", 1, "", False)
    v2 = await edit(store, doc.id, "step 1\nstep 2")
    assert (v2.version, v2.holder, v2.content) == (2, None, "step 1\nstep 2")

    await store.route(doc.id, "alice", "review", ["bob", "carol"])
    assert await state(store, doc.id) == "IN_REVIEW"
    tasks = await store.pending_tasks("bob")
    assert [(t.doc_id, t.kind, t.doc_state, t.doc_title) for t in tasks] == [
        ("SOP-001", "review", "IN_REVIEW", "Handling returns")
    ]
    [note] = await store.inbox("bob")
    assert note.thread == "SOP-001" and "review SOP-001" in note.body and note.sender == "alice"

    await store.review(doc.id, "bob", "recommend", "good")
    assert await state(store, doc.id) == "IN_REVIEW"  # carol still open
    await store.review(doc.id, "carol", "recommend", "")
    assert await state(store, doc.id) == "REVIEWED"
    assert await store.pending_tasks("bob") == [] and await store.pending_tasks("carol") == []

    await store.route(doc.id, "alice", "approval", ["dave", "operator"])
    assert await state(store, doc.id) == "IN_APPROVAL"
    await store.approve(doc.id, "dave")
    assert await state(store, doc.id) == "IN_APPROVAL"
    await store.approve(doc.id, "operator", "ok")
    assert await state(store, doc.id) == "EFFECTIVE"

    await store.retire(doc.id, "alice")
    assert await state(store, doc.id) == "RETIRED"
    transitions = [(e.detail["from"], e.detail["to"]) for e in await store.history(doc.id) if e.kind == "doc.state"]
    assert transitions == [
        ("DRAFT", "IN_REVIEW"), ("IN_REVIEW", "REVIEWED"), ("REVIEWED", "IN_APPROVAL"),
        ("IN_APPROVAL", "EFFECTIVE"), ("EFFECTIVE", "RETIRED"),
    ]
    # every version kept
    assert [v.number for v in await store.versions(doc.id)] == [1, 2]
    assert (await store.get_document(doc.id, version=1)).content == ""
    assert (await store.get_document(doc.id)).content == "step 1\nstep 2"


async def test_executable_document_lifecycle(store):
    doc = await store.create_document("alice", "CR", "Upgrade the database", "plan v1")
    assert (doc.id, doc.executable) == ("CR-001", True)
    await review_round(store, doc.id)
    await approval_round(store, doc.id)
    assert await state(store, doc.id) == "PRE_APPROVED"
    await store.release(doc.id, "alice")
    assert await state(store, doc.id) == "IN_EXECUTION"
    await edit(store, doc.id, "plan v1\nexecuted: ok")
    await store.route(doc.id, "alice", "review", ["bob"])
    assert await state(store, doc.id) == "POST_REVIEW"
    await store.review(doc.id, "bob", "recommend", "results fine")
    assert await state(store, doc.id) == "POST_REVIEWED"
    await store.route(doc.id, "alice", "approval", ["dave"])
    assert await state(store, doc.id) == "POST_APPROVAL"
    await store.approve(doc.id, "dave")
    assert await state(store, doc.id) == "POST_APPROVED"
    await store.close_document(doc.id, "operator")
    final = await store.get_document(doc.id)
    assert (final.state, final.version, final.content) == ("CLOSED", 2, "plan v1\nexecuted: ok")
    kinds = [e.kind for e in await store.history(doc.id)]
    assert kinds.count("doc.state") == 10 and kinds[0] == "doc.created"


@pytest.mark.parametrize("doc_type, back_to, second", [("SOP", "DRAFT", None), ("TP", "IN_EXECUTION", "post")])
async def test_any_request_updates_sends_the_document_back(store, doc_type, back_to, second):
    doc = await store.create_document("alice", doc_type, "T")
    if second:
        await review_round(store, doc.id)
        await approval_round(store, doc.id)
        await store.release(doc.id, "operator")
    await store.route(doc.id, "alice", "review", ["bob", "carol"])
    await store.review(doc.id, "bob", "request-updates", "add a rollback step")
    await store.review(doc.id, "carol", "recommend", "fine by me")
    assert await state(store, doc.id) == back_to
    # approval is blocked until a fresh review round recommends
    with pytest.raises(IllegalTransition):
        await store.route(doc.id, "alice", "approval", ["dave"])
    await edit(store, doc.id, "with rollback")
    await review_round(store, doc.id)
    assert await state(store, doc.id) == ("REVIEWED" if not second else "POST_REVIEWED")


@pytest.mark.parametrize("doc_type, cycle2", [("SPEC", False), ("CR", False), ("CR", True)])
async def test_rejection_returns_to_review_with_fresh_tasks_for_the_last_reviewers(store, doc_type, cycle2):
    doc = await store.create_document("alice", doc_type, "T")
    if cycle2:
        await review_round(store, doc.id)
        await approval_round(store, doc.id)
        await store.release(doc.id, "alice")
    await review_round(store, doc.id)  # bob and carol
    await store.route(doc.id, "alice", "approval", ["dave", "operator"])
    await store.reject(doc.id, "dave", "missing the owner")
    assert await state(store, doc.id) == ("POST_REVIEW" if cycle2 else "IN_REVIEW")
    assert await store.pending_tasks("operator") == []  # the other approval task was cancelled
    for who in ("bob", "carol"):
        [task] = await store.pending_tasks(who)
        assert (task.doc_id, task.kind, task.routed_by) == (doc.id, "review", "dave")
    with pytest.raises(IllegalTransition):
        await store.approve(doc.id, "operator")
    await store.review(doc.id, "bob", "recommend", "ok")
    await store.review(doc.id, "carol", "recommend", "ok")
    await approval_round(store, doc.id)
    expected = {"SPEC": "EFFECTIVE", "CR": "POST_APPROVED" if cycle2 else "PRE_APPROVED"}[doc_type]
    assert await state(store, doc.id) == expected
    rejected = [e for e in await store.history(doc.id) if e.kind == "doc.rejected"]
    assert rejected[0].actor == "dave" and rejected[0].detail["comment"] == "missing the owner"


async def test_ids_count_per_type_and_types_are_a_table(store):
    ids = [(await store.create_document("alice", t, "x")).id for t in ("SOP", "sop", "CR", "SPEC", "TP", "CR")]
    assert ids == ["SOP-001", "SOP-002", "CR-001", "SPEC-001", "TP-001", "CR-002"]
    await store.add_doc_type("WI", "Work instruction", executable=False)
    assert (await store.create_document("alice", "WI", "x")).id == "WI-001"
    with pytest.raises(Conflict):
        await store.add_doc_type("WI", "again", executable=True)
    assert [d.id for d in await store.list_documents(doc_type="CR")] == ["CR-001", "CR-002"]
    assert {d.id for d in await store.list_documents(state="DRAFT")} == set(ids) | {"WI-001"}


# ---- who may do what -------------------------------------------------------------------


async def test_only_assignees_with_open_tasks_review_and_approve(store, snapshot, refusals):
    doc = await store.create_document("alice", "SOP", "T")
    await store.route(doc.id, "alice", "review", ["bob"])
    before = snapshot(without_refusals=True)
    for call in (
        store.review(doc.id, "carol", "recommend", "me too"),
        store.review(doc.id, "operator", "recommend", "me too"),
    ):
        with pytest.raises(PermissionDenied, match="no open review task"):
            await call
    assert snapshot(without_refusals=True) == before
    await store.review(doc.id, "bob", "recommend", "ok")
    await store.route(doc.id, "alice", "approval", ["dave"])
    before = snapshot(without_refusals=True)
    for call in (store.approve(doc.id, "bob"), store.reject(doc.id, "carol", "no")):
        with pytest.raises(PermissionDenied, match="no open approval task"):
            await call
    assert snapshot(without_refusals=True) == before
    assert await refusals() == [
        ("carol", doc.id, "review", "assignees-only"), ("operator", doc.id, "review", "assignees-only"),
        ("bob", doc.id, "approve", "assignees-only"), ("carol", doc.id, "reject", "assignees-only"),
    ]
    await store.approve(doc.id, "dave")
    with pytest.raises(IllegalTransition):  # already effective: a second approval is not a thing
        await store.approve(doc.id, "dave")


async def test_release_close_retire_need_the_author_or_operator(store, snapshot, refusals):
    cr = await store.create_document("alice", "CR", "T")
    await review_round(store, cr.id)
    await approval_round(store, cr.id)
    before = snapshot(without_refusals=True)
    with pytest.raises(PermissionDenied, match="only the author"):
        await store.release(cr.id, "bob")
    assert snapshot(without_refusals=True) == before
    await store.release(cr.id, "alice")
    sop = await store.create_document("carol", "SOP", "T")
    await review_round(store, sop.id, reviewers=("bob",), author="carol")
    await approval_round(store, sop.id, author="carol")
    before = snapshot(without_refusals=True)
    with pytest.raises(PermissionDenied):
        await store.retire(sop.id, "alice")
    assert snapshot(without_refusals=True) == before
    assert await refusals() == [("bob", cr.id, "release", "author-or-operator"),
                                ("alice", sop.id, "retire", "author-or-operator")]
    await store.retire(sop.id, "operator")


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda s, d: s.route(d, "alice", "review", ["ghost"]), NotFound),
        (lambda s, d: s.route(d, "alice", "review", ["bob", "ghost"]), NotFound),
        (lambda s, d: s.route(d, "alice", "review", []), InvalidInput),
        (lambda s, d: s.route(d, "alice", "review", "bob"), InvalidInput),
        (lambda s, d: s.route(d, "alice", "review", ["../bob"]), InvalidInput),
        (lambda s, d: s.route(d, "alice", "sideways", ["bob"]), InvalidInput),
        (lambda s, d: s.route("SOP-999", "alice", "review", ["bob"]), NotFound),
        (lambda s, d: s.route("SOP-001; DROP TABLE", "alice", "review", ["bob"]), InvalidInput),
        (lambda s, d: s.create_document("alice", "XYZ", "t"), InvalidInput),
        (lambda s, d: s.create_document("alice", "SOP", ""), InvalidInput),
        (lambda s, d: s.create_document("alice", "SOP", "t\x1b[2J"), InvalidInput),
        (lambda s, d: s.create_document("alice", "SOP", "t" * 201), InvalidInput),
        (lambda s, d: s.create_document("../alice", "SOP", "t"), InvalidInput),
        (lambda s, d: s.create_document("alice", "SOP", "t", "x" * (1024 * 1024 + 1)), InvalidInput),
        (lambda s, d: s.get_document("SOP-042"), NotFound),
        (lambda s, d: s.get_document(d, version=7), NotFound),
        (lambda s, d: s.history("CR-777"), NotFound),
        (lambda s, d: s.versions("CR-777"), NotFound),
        (lambda s, d: s.checkout("SOP-404", "alice"), NotFound),
        (lambda s, d: s.checkout(d, "alice", lease_seconds=0), InvalidInput),
    ],
)
async def test_bad_document_input_changes_nothing(store, snapshot, call, error):
    doc = await store.create_document("alice", "SOP", "T")
    before = snapshot()
    with pytest.raises(error) as info:
        await call(store, doc.id)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    assert snapshot() == before


async def test_review_needs_a_known_outcome_and_request_updates_needs_a_comment(store, snapshot):
    doc = await store.create_document("alice", "SOP", "T")
    await store.route(doc.id, "alice", "review", ["bob"])
    before = snapshot()
    with pytest.raises(InvalidInput):
        await store.review(doc.id, "bob", "maybe", "hmm")
    with pytest.raises(InvalidInput, match="comment is required"):
        await store.review(doc.id, "bob", "request-updates", "  ")
    with pytest.raises(InvalidInput, match="comment is required"):
        await store.reject(doc.id, "bob", "")
    assert snapshot() == before


# ---- every illegal transition ----------------------------------------------------------

# What each state allows (written out here, independently of qms.workflow).
LEGAL = {
    "DRAFT": {"checkout", "route_review"},
    "IN_REVIEW": {"review"},
    "REVIEWED": {"route_approval"},
    "IN_APPROVAL": {"approve", "reject"},
    "EFFECTIVE": {"retire"},
    "RETIRED": set(),
    "PRE_APPROVED": {"release"},
    "IN_EXECUTION": {"checkout", "route_review"},
    "POST_REVIEW": {"review"},
    "POST_REVIEWED": {"route_approval"},
    "POST_APPROVAL": {"approve", "reject"},
    "POST_APPROVED": {"close"},
    "CLOSED": set(),
}

# Every action, done by someone who would be allowed to in the right state.
ACTIONS = {
    "checkout": lambda s, d: s.checkout(d, "alice"),
    "checkin": lambda s, d: s.checkin(d, "alice", "new text"),
    "cancel": lambda s, d: s.cancel_checkout(d, "alice"),
    "route_review": lambda s, d: s.route(d, "alice", "review", ["bob"]),
    "route_approval": lambda s, d: s.route(d, "alice", "approval", ["dave"]),
    "review": lambda s, d: s.review(d, "bob", "recommend", "ok"),
    "approve": lambda s, d: s.approve(d, "dave"),
    "reject": lambda s, d: s.reject(d, "dave", "no"),
    "release": lambda s, d: s.release(d, "operator"),
    "close": lambda s, d: s.close_document(d, "operator"),
    "retire": lambda s, d: s.retire(d, "operator"),
}

# The way to each state: (doc type, steps) from a fresh document.
PATH_NONEXEC = [
    ("DRAFT", None), ("IN_REVIEW", "route_review"), ("REVIEWED", "review"),
    ("IN_APPROVAL", "route_approval"), ("EFFECTIVE", "approve"), ("RETIRED", "retire"),
]
PATH_EXEC = [
    ("DRAFT", None), ("IN_REVIEW", "route_review"), ("REVIEWED", "review"),
    ("IN_APPROVAL", "route_approval"), ("PRE_APPROVED", "approve"), ("IN_EXECUTION", "release"),
    ("POST_REVIEW", "route_review"), ("POST_REVIEWED", "review"), ("POST_APPROVAL", "route_approval"),
    ("POST_APPROVED", "approve"), ("CLOSED", "close"),
]


async def drive(store, doc_type, target):
    path = PATH_EXEC if doc_type == "CR" else PATH_NONEXEC
    doc = await store.create_document("alice", doc_type, f"to {target}")
    for st, step in path:
        if step:
            await ACTIONS[step](store, doc.id)
        assert await state(store, doc.id) == st
        if st == target:
            return doc.id
    raise AssertionError(f"{target} not on the {doc_type} path")


CASES = [
    (doc_type, st, action)
    for doc_type, path in (("SOP", PATH_NONEXEC), ("CR", PATH_EXEC))
    for st, _ in path
    for action in ACTIONS
    if action not in LEGAL[st] and not (action in ("checkin", "cancel") and st in ("DRAFT", "IN_EXECUTION"))
]


@pytest.mark.parametrize("doc_type, start, action", CASES, ids=[f"{t}-{s}-{a}" for t, s, a in CASES])
async def test_illegal_transition_is_refused_and_changes_nothing(store, snapshot, doc_type, start, action):
    doc_id = await drive(store, doc_type, start)
    before = snapshot()
    with pytest.raises(IllegalTransition) as info:
        await ACTIONS[action](store, doc_id)
    text = str(info.value)
    assert f"it is {start}" in text and f"allowed from {start}:" in text and "\n" not in text
    assert snapshot() == before


async def test_approving_an_sop_never_reaches_the_executable_states(store):
    doc_id = await drive(store, "SOP", "EFFECTIVE")
    with pytest.raises(IllegalTransition, match="allowed from EFFECTIVE: retire"):
        await store.release(doc_id, "operator")


async def test_the_operator_reassigns_a_task_of_a_removed_agent(store, snapshot, refusals):
    doc = await store.create_document("alice", "SOP", "T")
    await store.route(doc.id, "alice", "review", ["bob", "carol"])
    await store.review(doc.id, "bob", "recommend", "ok")
    await store.remove_agent("carol", actor="roster")  # carol's task would strand the document
    [task] = await store.pending_tasks("carol")
    before = snapshot(without_refusals=True)
    with pytest.raises(PermissionDenied, match="only the operator"):
        await store.reassign_task(task.id, "dave", "alice")
    with pytest.raises(NotFound):
        await store.reassign_task(task.id, "ghost")
    with pytest.raises(InvalidInput, match="bob already has a review task for SOP-001 in this round"):
        await store.reassign_task(task.id, "bob")
    with pytest.raises(NotFound, match="no task 999"):
        await store.reassign_task(999, "dave")
    assert snapshot(without_refusals=True) == before
    assert await refusals() == [("alice", doc.id, "reassign a task", "operator-only")]
    new = await store.reassign_task(task.id, "dave")
    assert (new.doc_id, new.kind, new.assignee, new.doc_state) == ("SOP-001", "review", "dave", "IN_REVIEW")
    assert await store.pending_tasks("carol") == []
    assert [t.id for t in await store.pending_tasks("dave")] == [new.id]
    assert (await store.inbox("dave"))[0].thread == "SOP-001"
    with pytest.raises(InvalidInput, match="is cancelled"):
        await store.reassign_task(task.id, "operator")
    await store.review(doc.id, "dave", "recommend", "fine")
    assert await state(store, doc.id) == "REVIEWED"
    ev = [e for e in await store.history(doc.id) if e.kind == "doc.task_reassigned"]
    assert ev[0].detail["from"] == "carol" and ev[0].detail["to"] == "dave"
