"""request_permission waits for the answer whoever gives it (another process's store on the
same file), expires past its timeout, marks itself cancelled when its waiter is cancelled,
and is answered at once by an "always" rule; the workspace's crowd.toml sets the timeout."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.hub.approvals import answer_permission, pending_requests, request_permission
from qms import Store, permissions
from qms.errors import Conflict
from tests.waiting import wait_for


async def open_other(workspace):
    """A second Store on the same file: what another process (CLI, console) holds."""
    return await Store.open(workspace.db_path)


async def pending_of(store, agent):
    async def found():
        return [r for r in await permissions.list_requests(store) if r.agent == agent] or None
    return (await wait_for(found, timeout=10, what=f"a pending request of {agent}"))[0]


async def test_a_request_waits_until_another_process_answers_it(workspace, store):
    other = await open_other(workspace)
    try:
        waiting = asyncio.create_task(request_permission(store, agent="worker", tool="edit", title="Write a.txt",
                                                         diff="+hello\n", detail={"path": "a.txt"}, timeout=30))
        req = await pending_of(other, "worker")
        assert (req.tool, req.title, req.diff, req.detail) == ("edit", "Write a.txt", "+hello\n", {"path": "a.txt"})
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await answer_permission(other, req.id, "reject_once", "operator")
        decision = await asyncio.wait_for(waiting, 10)
        assert (decision.request_id, decision.outcome, decision.allowed, decision.answered_by) == \
            (req.id, "reject_once", False, "operator")
        with pytest.raises(Conflict, match="answered already"):
            await answer_permission(other, req.id, "allow_once", "operator")
    finally:
        await other.close()


async def test_allow_always_lets_the_next_identical_request_through_without_asking(store):
    waiting = asyncio.create_task(request_permission(store, agent="lead", tool="execute", title="make test",
                                                     timeout=30))
    req = await pending_of(store, "lead")
    await answer_permission(store, req.id, "allow_always", "operator")
    assert (await asyncio.wait_for(waiting, 10)).outcome == "allow_always"
    again = await asyncio.wait_for(request_permission(store, agent="lead", tool="execute", title="make lint"), 5)
    assert (again.outcome, again.answered_by, again.allowed) == ("allow_always", "rule", True)
    assert await permissions.list_requests(store) == []


async def test_an_unanswered_request_expires_and_that_is_an_event(store):
    decision = await asyncio.wait_for(
        request_permission(store, agent="deep", tool="edit", title="Write b.txt", timeout=0.5), 10)
    assert (decision.outcome, decision.allowed, decision.answered_by) == ("expired", False, "hub")
    [event] = await store.events_after(0, kinds="permission.expired")
    assert (event.subject, event.detail["request"], event.detail["reason"]) == \
        ("deep", decision.request_id, "nobody answered in time")


async def test_a_cancelled_waiter_marks_its_request_cancelled(store):
    waiting = asyncio.create_task(request_permission(store, agent="reviewer", tool="edit", title="x", timeout=30))
    req = await pending_of(store, "reviewer")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    closed = await permissions.get_request(store, req.id)
    assert (closed.state, closed.answered_by) == ("cancelled", "hub")
    with pytest.raises(Conflict, match="is cancelled already"):
        await answer_permission(store, req.id, "allow_once", "operator")


async def test_the_configured_timeout_applies_and_overdue_orphans_are_swept(workspace):
    (workspace.root / "crowd.toml").write_text('[approvals]\ntimeout = "1s"\n')
    from crowdtui.workspace import load_workspace

    ws = load_workspace(workspace.root)
    store = await ws.open_store()
    try:
        assert store.permission_timeout == 1.0
        await store.upsert_agent("solo", path="solo", tier=0)
        decision = await asyncio.wait_for(request_permission(store, agent="solo", tool="edit", title="x"), 10)
        assert decision.outcome == "expired"
        # a request whose waiter died (its process is gone) is expired by whoever lists the queue
        orphan, _ = await permissions.open_request(store, agent="solo", tool="edit", title="y", now=0.0, timeout=1)
        assert await pending_requests(store) == []
        assert (await permissions.get_request(store, orphan.id)).outcome == "expired"
    finally:
        await store.close()


async def start_hub(workspace, store, definitions, **grants):
    """A real hub whose agents have the crew's definitions, with ``grants`` given to some."""
    import dataclasses

    from crowdtui.hub.hub import Hub

    defs = {n: dataclasses.replace(d, grants=tuple(grants.get(n, d.grants))) for n, d in definitions.items()}
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    return hub


async def test_a_parent_answers_its_childs_request_over_mcp_within_its_own_grants(workspace, store, definitions):
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    from crowdtui.hub.unix_transport import unix_client

    from .conftest import structured

    # worker (lead's child, deep's parent) may answer only for the "edit" tool
    hub = await start_hub(workspace, store, definitions,
                          worker=("pending_permissions", "answer_permission", "edit", "get_messages"))
    edit = asyncio.create_task(request_permission(store, agent="deep", tool="edit", title="Write c.txt",
                                                  diff="+c\n", timeout=30))
    shell = asyncio.create_task(request_permission(store, agent="deep", tool="execute", title="rm -rf /",
                                                   timeout=30))
    peer = asyncio.create_task(request_permission(store, agent="reviewer", tool="edit", title="peer", timeout=30))
    try:
        await wait_for(lambda: _count_is(store, 3), what="three pending requests")
        async with Client(unix_client(await hub.open_door("worker"))) as worker:
            listed = structured(await worker.call_tool("pending_permissions", {}))["requests"]
            assert [(r["agent"], r["tool"], r["answerable"]) for r in listed] == \
                [("deep", "edit", True), ("deep", "execute", False)]
            assert listed[0]["diff"] == "+c\n"
            by_tool = {r["tool"]: r["id"] for r in listed}
            out = structured(await worker.call_tool("answer_permission",
                                                    {"request_id": by_tool["edit"], "outcome": "allow_once"}))
            assert (out["outcome"], out["allowed"], out["answered_by"]) == ("allow_once", True, "worker")
            with pytest.raises(MCPError, match="your own grants do not allow"):
                await worker.call_tool("answer_permission", {"request_id": by_tool["execute"],
                                                             "outcome": "allow_once"})
            peer_id = (await permissions.list_requests(store, agents=["reviewer"]))[0].id
            with pytest.raises(MCPError, match="not below worker"):
                await worker.call_tool("answer_permission", {"request_id": peer_id, "outcome": "allow_always"})
            with pytest.raises(MCPError, match="answered already"):
                await worker.call_tool("answer_permission", {"request_id": by_tool["edit"], "outcome": "reject_once"})
        async with Client(unix_client(await hub.open_door("deep"))) as deep:  # not its own, even at tier 2
            assert structured(await deep.call_tool("pending_permissions", {}))["requests"] == []
            with pytest.raises(MCPError, match="not below deep"):
                await deep.call_tool("answer_permission", {"request_id": by_tool["execute"], "outcome": "allow_once"})
        decision = await asyncio.wait_for(edit, 10)
        assert (decision.outcome, decision.answered_by) == ("allow_once", "worker")
        assert not shell.done() and not peer.done()  # they wait for someone who may answer
        async with Client(unix_client(await hub.open_door("lead"))) as lead:  # tier 0: every tool, whole subtree
            structured(await lead.call_tool("answer_permission", {"request_id": by_tool["execute"],
                                                                  "outcome": "reject_once"}))
        assert (await asyncio.wait_for(shell, 10)).outcome == "reject_once"
        denied = [(e.actor, e.detail["args"]["request_id"]) for e in await store.events_after(0, kinds="hub.denied")
                  if e.subject == "answer_permission"]
        assert denied == [("worker", by_tool["execute"]), ("worker", peer_id), ("deep", by_tool["execute"])]
        answered = [(e.actor, e.detail["request"]) for e in await store.events_after(0, kinds="permission.answered")]
        assert answered == [("worker", by_tool["edit"]), ("lead", by_tool["execute"])]
    finally:
        for task in (edit, shell, peer):
            task.cancel()
        await asyncio.gather(edit, shell, peer, return_exceptions=True)
        await hub.stop()


async def _count_is(store, n):
    return await permissions.pending_count(store) == n
