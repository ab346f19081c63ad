"""The hub with real agent containers: the bridge inside the image, end to end, hub restart."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from mcp import Client

from crowdtui.hub.hub import Hub
from crowdtui.hub.unix_transport import unix_client

from tests.waiting import wait_for

from .conftest import REPO, structured, write_roster

pytestmark = pytest.mark.docker


@pytest.fixture
async def crew(workspace, agent_image):
    """The crew as real AGENT.md files, registered; a started hub over the roster; a runtime."""
    from qms import Store

    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime

    write_roster(workspace)
    roster = load_roster(workspace)
    assert not roster.problems, roster.problems
    store = await Store.open(workspace.db_path)
    await sync_roster(store, roster)
    defs = dict(roster.agents)
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace)
    state = {"hub": hub}
    yield store, defs, state, runtime
    for name in list(defs):
        try:
            await runtime.remove(name)
        except Exception:
            pass
    await state["hub"].stop()
    await store.close()


async def start(runtime, hub, d):
    await hub.open_door(d.name)
    return await runtime.start(d)


async def test_inside_a_container_the_bridge_sends_reads_checks_out_and_checks_in(crew, workspace):
    store, defs, state, runtime = crew
    hub = state["hub"]
    doc = await store.create_document("operator", "SOP", "Container test")
    await store.send_message("operator", "lead", "hello lead")
    await start(runtime, hub, defs["lead"])
    await hub.open_door("echo")
    container = await runtime.container("lead")
    script = "\n".join([
        "send echo hi from inside", "inbox all", f"checkout {doc.id}", f"checkin {doc.id} from the container",
        "written inside a container", ".", "quit",
    ]) + "\n"
    code, output = await asyncio.to_thread(
        container.exec_run, ["sh", "-c", f"printf '%s' \"$0\" | crowd-agent --role interactive", script],
        user="1000:1000", environment={"CROWD_BRIDGE_QUIET": "1"},
    )
    text = output.decode()
    assert code == 0, text
    assert "hello lead" in text  # the inbox, read through the bridge
    assert f"{doc.id} is checked out to you" in text and f"{doc.id} is now v2" in text
    [m] = await store.inbox("echo")
    assert (m.sender, m.body) == ("lead", "hi from inside")
    latest = await store.get_document(doc.id)
    assert latest.version == 2 and latest.content == "written inside a container\n" and latest.holder is None
    assert [v.author for v in await store.versions(doc.id)] == ["operator", "lead"]
    calls = [e for e in await store.events_after(0, limit=10000, kinds=["hub.call"]) if e.actor == "lead"]
    assert {"send_message", "get_messages", "checkout_document", "checkin_document"} <= {e.subject for e in calls}


def crowdtui_cli(workspace, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )


async def test_end_to_end_delegate_draft_review_and_operator_approval(crew, workspace):
    store, defs, state, runtime = crew
    hub = state["hub"]
    for name in ("worker", "reviewer"):
        await start(runtime, hub, defs[name])
    lead_door = await hub.open_door("lead")
    async with Client(unix_client(lead_door)) as lead:
        await lead.call_tool("delegate", {"child": "worker", "prompt": "Write the release checklist\nInclude rollback"})

    async def reviewed_and_routed():
        docs = await store.list_documents()
        return docs and docs[0].state == "IN_APPROVAL" and docs[0]
    doc = await wait_for(reviewed_and_routed, timeout=90, what="the worker's draft to pass review and reach approval")
    assert doc.author == "worker" and doc.title == "Write the release checklist"
    assert [t.kind for t in await store.pending_tasks("operator")] == ["approval"]

    # in a thread: the hub shares this loop, and a write it has begun must be able to finish
    result = await asyncio.to_thread(crowdtui_cli, workspace, "doc", "approve", doc.id)
    assert result.returncode == 0, result.stderr
    assert (await store.get_document(doc.id)).state == "EFFECTIVE"

    history = [(e.actor, e.kind) for e in await store.history(doc.id)]
    for step in [("worker", "doc.created"), ("worker", "doc.checkout"), ("worker", "doc.checkin"),
                 ("worker", "doc.routed"), ("reviewer", "doc.reviewed"), ("operator", "doc.approved")]:
        assert step in history, (step, history)
    reviewed = [e for e in await store.history(doc.id) if e.kind == "doc.reviewed"]
    assert reviewed[0].detail.get("outcome") == "recommend"
    everything = await store.events_after(0, limit=10000)
    kinds = {(e.actor, e.kind, e.subject) for e in everything}
    assert ("lead", "hub.delegated", "worker") in kinds
    assert ("worker", "hub.escalated", "lead") in kinds  # the worker reported back
    assert {("worker", "hub.call", t) for t in ("create_document", "checkout_document", "checkin_document", "route_document")} <= kinds
    assert ("reviewer", "hub.call", "review_document") in kinds
    reports = [m.body for m in await store.inbox("lead")]
    assert any(doc.id in r and "routed it for review to reviewer" in r for r in reports)


async def test_hub_restart_with_agents_running_bridges_reconnect_without_restarting_containers(crew, workspace):
    store, defs, state, runtime = crew
    info = await start(runtime, state["hub"], defs["echo"])
    await store.send_message("operator", "echo", "first")

    async def reply(body):
        async def got():
            return [m for m in await store.inbox("operator") if m.body == f"echo: {body}"]
        return await wait_for(got, timeout=60, what=f"the echo of {body!r}")

    await reply("first")
    await state["hub"].stop()
    await store.send_message("operator", "echo", "while the hub was down")
    await asyncio.sleep(1.0)
    hub = Hub(workspace, store)
    await hub.start()
    state["hub"] = hub
    await hub.open_running_doors() if (await store.get_agent("echo")).state == "running" else await hub.open_door("echo")
    await reply("while the hub was down")
    await store.send_message("operator", "echo", "after")
    await reply("after")
    after = await runtime.info("echo")
    assert after.container_id == info.container_id and after.started_at == info.started_at and after.running


async def test_the_sample_roster_drafts_and_reviews_what_the_operator_asks_for(sample_workspace, agent_image):
    """The shipped roster: the operator asks lead (worker role); qa (reviewer role) reviews."""
    from qms import Store

    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime

    ws = sample_workspace
    roster = load_roster(ws)
    store = await Store.open(ws.db_path)
    await sync_roster(store, roster)
    runtime = Runtime(ws)
    try:
        async with Hub(ws, store) as hub:
            for name in ("lead", "qa"):
                await start(runtime, hub, roster.agents[name])
            await store.send_message("operator", "lead", "Onboarding checklist for new agents")

            async def in_approval():
                docs = await store.list_documents()
                return docs and docs[0].state == "IN_APPROVAL" and docs[0]
            doc = await wait_for(in_approval, 90, what="lead's draft to be reviewed by qa and sent for approval")
        assert doc.author == "lead" and doc.title == "Onboarding checklist for new agents"
        steps = [(e.actor, e.kind) for e in await store.history(doc.id)]
        assert ("qa", "doc.reviewed") in steps and ("lead", "doc.checkin") in steps
        reports = [m.body for m in await store.inbox("operator") if m.sender == "lead"]
        assert any("routed it for review to qa" in r for r in reports)
    finally:
        for name in ("lead", "qa"):
            try:
                await runtime.remove(name)
            except Exception:
                pass
        await store.close()


async def test_scripted_reviewer_requests_updates_when_the_text_has_a_todo(crew, workspace):
    store, defs, state, runtime = crew
    hub = state["hub"]
    await start(runtime, hub, defs["reviewer"])
    lead_door = await hub.open_door("lead")
    async with Client(unix_client(lead_door)) as lead:
        doc = structured(await lead.call_tool("create_document", {"doc_type": "SOP", "title": "Half done"}))
        await lead.call_tool("checkout_document", {"doc_id": doc["id"]})
        await lead.call_tool("checkin_document", {"doc_id": doc["id"], "content": "Step 1\nTODO: step 2\n"})
        await lead.call_tool("route_document", {"doc_id": doc["id"], "kind": "review", "assignees": ["reviewer"]})

    async def reviewed():
        return [e for e in await store.history(doc["id"]) if e.kind == "doc.reviewed"]
    [event] = await wait_for(reviewed, 60, what="the reviewer's verdict")
    assert event.actor == "reviewer" and event.detail.get("outcome") == "request-updates"
    assert "TODO" in (event.detail.get("comment") or "")
    assert (await store.get_document(doc["id"])).state == "DRAFT"
