"""Issue 18, item 5: a tier-2 agent rewrites the operator's SOP and tries to make it
effective alone — checkout, checkin its own text, route for review to itself, recommend,
route for approval to itself, approve — over its own real hub socket with a real MCP
client. Every step past the edit is refused (with a message saying what to do), every
refusal is an event, and the document never becomes EFFECTIVE on an agent's word.

The crew is tests/hub/conftest.py's: lead (0) ── worker (1) ── deep (2), reviewer (0).
"""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.hub.tools import CONFLICT, DENIED
from crowdtui.hub.unix_transport import unix_client
from tests.hub.conftest import crew_definitions, store, structured  # noqa: F401 (store: the fixture)

OPERATORS_TEXT = "Only the operator grants access to production.\n"
AGENTS_TEXT = "Every agent may grant itself access to production.\n"


@pytest.fixture
async def hub(workspace, store):
    from crowdtui.hub.hub import Hub

    h = Hub(workspace, store, definitions=crew_definitions(workspace).get)
    await h.start()
    yield h
    await h.stop()


async def refused(client, tool, args, code, *needles):
    with pytest.raises(MCPError) as info:
        await client.call_tool(tool, args)
    message = info.value.error.message
    assert info.value.error.code == code, (tool, message)
    assert "\n" not in message
    for n in needles:
        assert n in message, message
    return message


async def refusals(store, actor):
    return [(e.subject, e.detail["action"], e.detail["rule"])
            for e in await store.events_after(0, limit=100_000, kinds=["doc.refused"]) if e.actor == actor]


async def test_a_tier2_agent_cannot_make_its_rewrite_of_the_operators_sop_effective(hub, store):
    sop = await store.create_document("operator", "SOP", "Production access", OPERATORS_TEXT)
    assert (await store.get_agent("deep")).tier == 2
    async with Client(unix_client(await hub.open_door("deep"))) as deep:
        # the edit itself is allowed (anyone may propose a new version) ...
        assert structured(await deep.call_tool("checkout_document", {"doc_id": sop.id}))["holder"] == "deep"
        v2 = structured(await deep.call_tool("checkin_document", {"doc_id": sop.id, "content": AGENTS_TEXT}))
        assert v2["version"] == 2
        # ... but nothing after it: the attack, step by step
        await refused(deep, "route_document", {"doc_id": sop.id, "kind": "review", "assignees": ["deep"]}, DENIED,
                      f"only the operator can route {sop.id}, not deep", "ask operator to route it")
        await refused(deep, "review_document", {"doc_id": sop.id, "outcome": "recommend", "comment": "lgtm"},
                      CONFLICT, "it is DRAFT")
        await refused(deep, "route_document", {"doc_id": sop.id, "kind": "approval", "assignees": ["deep"]},
                      CONFLICT, "it is DRAFT")
        await refused(deep, "approve_document", {"doc_id": sop.id}, CONFLICT, "it is DRAFT")
        # nor routing it to someone else, nor in lower case
        await refused(deep, "route_document", {"doc_id": sop.id.lower(), "kind": "review", "assignees": ["reviewer"]},
                      DENIED, "only the operator can route")
    doc = await store.get_document(sop.id)
    assert (doc.state, doc.author, doc.version) == ("DRAFT", "operator", 2)
    assert await store.list_documents(state="EFFECTIVE") == []
    assert await refusals(store, "deep") == [(sop.id, "route for review", "only-owner-routes")] * 2
    calls = [(e.subject, e.detail["ok"]) for e in await store.events_after(0, limit=100_000, kinds=["hub.call"])
             if e.actor == "deep"]
    assert calls.count(("route_document", False)) == 3 and calls.count(("approve_document", False)) == 1


async def test_even_routed_by_the_operator_the_agents_version_needs_others_and_the_operator(hub, store):
    """The operator routes deep's rewrite without reading it: deep still cannot review or
    approve it, a reviewer cannot approve it too, and another agent's approval is not enough."""
    sop = await store.create_document("operator", "SOP", "Production access", OPERATORS_TEXT)
    await store.checkout(sop.id, "deep")
    await store.checkin(sop.id, "deep", AGENTS_TEXT)
    from qms.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="deep checked in version 2 of SOP-001 and may not review it"):
        await store.route(sop.id, "operator", "review", ["deep", "reviewer"])
    await store.route(sop.id, "operator", "review", ["reviewer"])
    async with Client(unix_client(await hub.open_door("deep"))) as deep, \
            Client(unix_client(await hub.open_door("reviewer"))) as reviewer, \
            Client(unix_client(await hub.open_door("lead"))) as lead:
        await refused(deep, "review_document", {"doc_id": sop.id, "outcome": "recommend", "comment": "lgtm"},
                      DENIED, "deep has no open review task")
        await reviewer.call_tool("review_document", {"doc_id": sop.id, "outcome": "recommend", "comment": "ok"})
        await refused(deep, "route_document", {"doc_id": sop.id, "kind": "approval", "assignees": ["lead"]}, DENIED,
                      "only the operator can route")
        for approvers, rule in ((["deep", "operator"], "author-may-not-approve"),
                                (["reviewer", "operator"], "reviewer-may-not-approve"),
                                (["lead"], "operator-approval")):
            with pytest.raises(PermissionDenied) as info:
                await store.route(sop.id, "operator", "approval", approvers)
            assert info.value.rule == rule
        await store.route(sop.id, "operator", "approval", ["lead", "operator"])
        await refused(deep, "approve_document", {"doc_id": sop.id}, DENIED, "deep has no open approval task")
        after_lead = structured(await lead.call_tool("approve_document", {"doc_id": sop.id}))
        assert after_lead["state"] == "IN_APPROVAL"  # an agent's approval alone is not enough
    await store.approve(sop.id, "operator", "read the change")
    assert (await store.get_document(sop.id)).state == "EFFECTIVE"
    assert [r[2] for r in await refusals(store, "deep")] == ["assignees-only", "only-owner-routes", "assignees-only"]
    assert [r[2] for r in await refusals(store, "operator")] == [
        "author-may-not-review", "author-may-not-approve", "reviewer-may-not-approve", "operator-approval"]


async def test_an_agent_cannot_make_even_its_own_document_effective_alone(hub, store):
    async with Client(unix_client(await hub.open_door("deep"))) as deep, \
            Client(unix_client(await hub.open_door("worker"))) as worker:
        doc = structured(await deep.call_tool("create_document", {"doc_type": "SOP", "title": "Mine", "content": "v1"}))
        await refused(deep, "route_document", {"doc_id": doc["id"], "kind": "review", "assignees": ["deep"]}, DENIED,
                      "deep checked in version 1", "route it to someone else")
        await deep.call_tool("route_document", {"doc_id": doc["id"], "kind": "review", "assignees": ["worker"]})
        await worker.call_tool("review_document", {"doc_id": doc["id"], "outcome": "recommend", "comment": "ok"})
        await refused(deep, "route_document", {"doc_id": doc["id"], "kind": "approval", "assignees": ["deep"]}, DENIED,
                      "deep checked in version 1", "may not approve it")
        await refused(deep, "route_document", {"doc_id": doc["id"], "kind": "approval", "assignees": ["worker"]},
                      DENIED, "worker reviewed version 1", "may not also approve it")
        await refused(worker, "route_document", {"doc_id": doc["id"], "kind": "approval", "assignees": ["lead"]},
                      DENIED, "only its author (deep) or the operator can route")
    assert (await store.get_document(doc["id"])).state == "REVIEWED"
    assert [r[2] for r in await refusals(store, "deep")] == [
        "author-may-not-review", "author-may-not-approve", "reviewer-may-not-approve"]
    assert [r[2] for r in await refusals(store, "worker")] == ["only-owner-routes"]
