"""Permission requests and "always" rules as the store keeps them (qms.permissions), on a
real SQLite file: each request is closed once, rules answer at once and can be revoked,
hostile input is bounded, and every change is an event."""

from __future__ import annotations

import pytest

from qms import permissions as perm
from qms.errors import Conflict, InvalidInput, NotFound


async def kinds(store):
    return [(e.kind, e.actor, e.subject, e.detail.get("request"), e.detail.get("outcome"))
            for e in await store.events_after(0, kinds="permission.*")]


async def test_a_request_is_answered_once_and_a_second_answer_is_refused_as_an_event(store, snapshot):
    req, after = await perm.open_request(store, agent="alice", tool="edit", title="Write notes.md",
                                         diff="--- a\n+++ b\n@@\n-x\n+y\n", detail={"path": "notes.md"},
                                         now=10.0, timeout=60)
    assert (req.state, req.outcome, req.expires_at, req.options) == ("pending", None, 70.0, perm.ANSWERS)
    assert after == (await store.events_after(0, kinds="permission.*"))[-1].id
    assert [r.id for r in await perm.list_requests(store)] == [req.id]
    assert await perm.pending_count(store) == 1
    done = await perm.answer_request(store, req.id, "allow_once", actor="operator", now=11.0)
    assert (done.state, done.outcome, done.answered_by, done.allowed) == ("answered", "allow_once", "operator", True)
    before = snapshot(without_refusals=False)
    with pytest.raises(Conflict, match=rf"request {req.id} is answered already \(allow_once by operator\)"):
        await perm.answer_request(store, req.id, "reject_once", actor="bob", now=12.0)
    assert (await perm.get_request(store, req.id)).outcome == "allow_once"
    assert await perm.list_requests(store) == []
    assert await kinds(store) == [
        ("permission.requested", "alice", "alice", req.id, None),
        ("permission.answered", "operator", "alice", req.id, "allow_once"),
        ("permission.refused", "bob", str(req.id), req.id, "reject_once"),
    ]
    assert snapshot()["permission_requests"] == before["permission_requests"]


async def test_allow_always_makes_a_rule_that_answers_the_next_request_at_once_until_revoked(store):
    first, _ = await perm.open_request(store, agent="alice", tool="execute", title="ls", now=1.0, timeout=None)
    twin, _ = await perm.open_request(store, agent="alice", tool="execute", title="ls -l", now=1.5, timeout=None)
    other, _ = await perm.open_request(store, agent="bob", tool="execute", title="ls", now=1.6, timeout=None)
    await perm.answer_request(store, first.id, "allow_always", actor="operator", now=2.0)
    # the pending twin of the same agent and tool is answered by the new rule; bob's is not
    assert ((await perm.get_request(store, twin.id)).outcome, (await perm.get_request(store, twin.id)).answered_by) \
        == ("allow_always", "rule")
    assert (await perm.get_request(store, other.id)).state == "pending"
    [rule] = await perm.list_rules(store)
    assert (rule.agent, rule.tool, rule.outcome, rule.created_by, rule.request_id) == \
        ("alice", "execute", "allow_always", "operator", first.id)
    third, _ = await perm.open_request(store, agent="alice", tool="execute", title="pwd", now=3.0, timeout=5)
    assert (third.state, third.outcome, third.answered_by, third.allowed) == ("answered", "allow_always", "rule", True)
    assert (await perm.revoke_rule(store, "alice", "execute", actor="operator")).outcome == "allow_always"
    with pytest.raises(NotFound, match="alice has no \"always\" rule for 'execute'"):
        await perm.revoke_rule(store, "alice", "execute", actor="operator")
    fourth, _ = await perm.open_request(store, agent="alice", tool="execute", title="pwd", now=4.0, timeout=5)
    assert fourth.state == "pending"
    await perm.answer_request(store, fourth.id, "reject_always", actor="operator", now=5.0)
    fifth, _ = await perm.open_request(store, agent="alice", tool="execute", title="rm", now=6.0, timeout=5)
    assert (fifth.outcome, fifth.allowed) == ("reject_always", False)
    assert [k for k, *_ in await kinds(store)].count("permission.rule_added") == 2
    assert [k for k, *_ in await kinds(store)].count("permission.rule_revoked") == 1


async def test_expired_and_cancelled_requests_are_closed_once_and_overdue_ones_swept(store):
    a, _ = await perm.open_request(store, agent="alice", tool="edit", title="a", now=0.0, timeout=10)
    b, _ = await perm.open_request(store, agent="bob", tool="edit", title="b", now=0.0, timeout=100)
    c, _ = await perm.open_request(store, agent="carol", tool="edit", title="c", now=0.0, timeout=5)
    closed = await perm.close_request(store, c.id, "cancelled", actor="hub", now=1.0, reason="gone")
    assert (closed.state, closed.outcome, closed.allowed) == ("cancelled", "cancelled", False)
    assert await perm.close_request(store, c.id, "expired", actor="hub", now=2.0) is None
    assert [r.id for r in await perm.expire_overdue(store, now=50.0, actor="hub")] == [a.id]
    assert await perm.expire_overdue(store, now=50.0, actor="hub") == []
    assert [(r.id, r.state) for r in await perm.list_requests(store, state=None)] == \
        [(a.id, "expired"), (b.id, "pending"), (c.id, "cancelled")]
    with pytest.raises(Conflict, match="is expired already"):
        await perm.answer_request(store, a.id, "allow_once", actor="operator", now=51.0)
    with pytest.raises(InvalidInput):
        await perm.close_request(store, b.id, "allow_once", actor="hub", now=1.0)


async def test_hostile_requests_are_bounded_or_refused_and_leave_nothing(store, snapshot):
    before = snapshot()
    with pytest.raises(NotFound):
        await perm.open_request(store, agent="ghost", tool="edit", title="x", now=0.0, timeout=1)
    with pytest.raises(InvalidInput):
        await perm.open_request(store, agent="../etc", tool="edit", title="x", now=0.0, timeout=1)
    with pytest.raises(InvalidInput, match="tool key"):
        await perm.open_request(store, agent="alice", tool="e" * 500, title="x", now=0.0, timeout=1)
    with pytest.raises(InvalidInput, match="over 256 KiB"):
        await perm.open_request(store, agent="alice", tool="edit", title="x", diff="+" * (300 * 1024), now=0.0,
                                timeout=1)
    with pytest.raises(InvalidInput, match="is not one of"):
        await perm.open_request(store, agent="alice", tool="edit", title="x", options=["yes"], now=0.0, timeout=1)
    with pytest.raises(InvalidInput, match="not a number"):
        await perm.answer_request(store, "1; drop", "allow_once", actor="operator", now=0.0)
    with pytest.raises(NotFound, match="no permission request 99"):
        await perm.answer_request(store, 99, "allow_once", actor="operator", now=0.0)
    assert snapshot() == before
    req, _ = await perm.open_request(store, agent="alice", tool="edit", title="\x1b[31mred\x1b[0m\nline" + "t" * 400,
                                     diff="-a\r\n+b\x1b]0;x\x07\n", detail={"blob": "z" * 100_000},
                                     options=["allow_once", "reject_once"], now=0.0, timeout=1)
    assert "\x1b" not in req.title and "\n" not in req.title and len(req.title) == perm.MAX_TITLE_CHARS
    assert req.diff == "-a\n+b\\x1b]0;x\\x07\n"
    assert req.detail["truncated"]["bytes"] > 100_000
    with pytest.raises(InvalidInput, match="does not offer allow_always"):
        await perm.answer_request(store, req.id, "allow_always", actor="operator", now=1.0)
    assert (await perm.get_request(store, req.id)).state == "pending"


def test_the_timeout_is_read_from_crowd_toml_approvals():
    assert perm.timeout_from_config(None) == perm.DEFAULT_TIMEOUT
    assert perm.timeout_from_config({"timeout": "10m"}) == 600
    assert perm.timeout_from_config({"timeout": "90s"}) == 90
    assert perm.timeout_from_config({"timeout": 2.5}) == 2.5
    for bad in ({"timeout": "soon"}, {"timeout": 0}, {"timeout": "9d"}, {"timeout": True}, {"tmeout": 5}):
        with pytest.raises(InvalidInput, match=r"\[approvals\]"):
            perm.timeout_from_config(bad)


async def test_the_queue_reads_as_sentences_in_the_activity(store):
    from qms.event_words import describe

    req, _ = await perm.open_request(store, agent="alice", tool="edit", title="Write notes.md", now=0.0, timeout=9)
    await perm.answer_request(store, req.id, "allow_always", actor="bob", now=1.0)
    await perm.revoke_rule(store, "alice", "edit", actor="operator")
    lines = [describe(e) for e in await store.events_after(0, kinds="permission.*")]
    assert lines == [f"alice asks permission for edit (request {req.id}): Write notes.md",
                     f"bob answered alice's request {req.id} for edit: allow_always",
                     "bob made allow_always the rule for alice's edit",
                     "operator revoked the allow_always rule for alice's edit"]


async def test_an_agent_may_have_only_so_many_requests_waiting_and_a_refusal_is_an_event(store):
    from qms.quotas import QuotaExceeded, Quotas

    store.quotas = Quotas(permission_requests_pending=2)
    for i in range(2):
        await perm.open_request(store, agent="dave", tool="edit", title=f"w{i}", now=0.0, timeout=None)
    with pytest.raises(QuotaExceeded, match="dave is over its quota permission_requests_pending = 2"):
        await perm.open_request(store, agent="dave", tool="edit", title="w3", now=0.0, timeout=None)
    await perm.open_request(store, agent="carol", tool="edit", title="others still ask", now=0.0, timeout=None)
    [refused] = await store.events_after(0, kinds="quota.refused")
    assert (refused.actor, refused.subject) == ("dave", "permission_requests_pending")
    first = (await perm.list_requests(store, agents=["dave"]))[0]
    await perm.answer_request(store, first.id, "reject_once", actor="operator", now=1.0)
    await perm.open_request(store, agent="dave", tool="edit", title="w3", now=2.0, timeout=None)
    assert len(await perm.list_requests(store, agents=["dave"])) == 2
