"""The dispatch's MCP tools over the hub's real per-agent unix sockets."""

from __future__ import annotations

import json

import pytest

from crowdtui.dispatch.mcp_tools import DISPATCH_TOOLS, add_dispatch_tools
from crowdtui.dispatch.routes import add_route, list_routes
from crowdtui.roster import AgentDef

CREW = [("lead", "lead", 0, None), ("helper", "lead/helper", 1, "lead"), ("qa", "qa", 0, None)]


def structured(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


@pytest.fixture
async def doors(workspace, store, dispatch):
    from crowdtui.hub.hub import Hub

    defs = {n: AgentDef(name=n, file=workspace.agents_dir / rel / "AGENT.md", rel_path=rel, tier=t, parent=p,
                        children=tuple(c for c, _, _, pp in CREW if pp == n))
            for n, rel, t, p in CREW}
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    add_dispatch_tools(hub.server, dispatch)
    paths = {n: await hub.open_door(n) for n in defs}
    yield paths
    await hub.stop()


async def call(path, tool, args):
    from mcp import Client

    from crowdtui.hub.unix_transport import unix_client

    from mcp.shared.exceptions import MCPError

    async with Client(unix_client(path)) as c:
        try:
            return await c.call_tool(tool, args)
        except MCPError as exc:  # raised outside the client, so not wrapped in a task group
            error = exc
    raise error


async def test_tools_are_listed_for_the_agents(doors):
    from mcp import Client

    from crowdtui.hub.unix_transport import unix_client

    async with Client(unix_client(doors["lead"])) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert set(DISPATCH_TOOLS) <= names
    async with Client(unix_client(doors["helper"])) as c:  # tier 1: may look, not change
        names = {t.name for t in (await c.list_tools()).tools}
    assert names & set(DISPATCH_TOOLS) == {"reply", "list_routes", "list_tasks"}


async def test_reply_only_to_chats_routed_to_the_caller_or_its_children(doors, dispatch, store, channel, clock):
    from mcp.shared.exceptions import MCPError

    ch, _ = await dispatch.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])
    await add_route(store, "platform=local", "helper", actor="operator", now=clock.now())
    from crowdtui.dispatch.inbound import parse_inbound

    await dispatch.receive(ch, parse_inbound({"id": "1", "chat": "local:ann", "text": "hi"}))
    await dispatch.route_pending()
    with pytest.raises(MCPError, match="reply has no parameter 'as'"):  # refused, not ignored (issue 18)
        await call(doors["helper"], "reply", {"chat": "local:ann", "text": "hello Ann", "as": "qa"})
    r = structured(await call(doors["helper"], "reply", {"chat": "local:ann", "text": "hello Ann"}))
    assert r["chat"] == "local:ann"
    structured(await call(doors["lead"], "reply", {"chat": "local:ann", "text": "from the parent"}))
    with pytest.raises(MCPError, match="qa may not reply to chat"):
        await call(doors["qa"], "reply", {"chat": "local:ann", "text": "not mine"})
    assert await dispatch.send_due() == 2
    assert [(s["from"], s["text"]) for s in channel.sent] == [("helper", "hello Ann"), ("lead", "from the parent")]


async def test_route_and_task_tools_need_authority_and_stay_in_the_callers_tree(doors, store):
    from mcp.shared.exceptions import MCPError

    r = structured(await call(doors["lead"], "add_route", {"match": "platform=local", "agent": "helper"}))
    assert r["route"]["agent"] == "helper" and r["route"]["state"] == "pending"  # wide: waits for the operator
    with pytest.raises(MCPError, match="neither you nor one of your descendants"):
        await call(doors["lead"], "add_route", {"match": "*", "agent": "qa"})
    with pytest.raises(MCPError, match="not available at tier 1"):
        await call(doors["helper"], "add_route", {"match": "*", "agent": "helper"})
    with pytest.raises(MCPError, match="unknown key"):
        await call(doors["lead"], "add_route", {"match": "nope=1", "agent": "lead"})
    listed = structured(await call(doors["helper"], "list_routes", {}))
    assert [x["match"] for x in listed["routes"]] == ["platform=local"]
    assert [x.agent for x in await list_routes(store)] == ["helper"]

    t = structured(await call(doors["lead"], "add_task", {"name": "nightly", "agent": "helper",
                                                         "schedule": "cron:0 3 * * *", "text": "tidy up"}))
    assert t["task"]["schedule"] == "cron:0 3 * * *"
    with pytest.raises(MCPError, match="neither you nor"):
        await call(doors["qa"], "pause_task", {"name": "nightly"})
    assert structured(await call(doors["lead"], "pause_task", {"name": "nightly"}))["task"]["state"] == "paused"
    assert structured(await call(doors["lead"], "resume_task", {"name": "nightly"}))["task"]["state"] == "active"
    assert [x["name"] for x in structured(await call(doors["helper"], "list_tasks", {}))["tasks"]] == ["nightly"]
    structured(await call(doors["lead"], "remove_task", {"name": "nightly"}))
    rid = r["route"]["id"]
    structured(await call(doors["lead"], "remove_route", {"route_id": rid}))
    assert await list_routes(store) == []


async def test_route_takeover_by_a_tier0_agent_is_refused(doors, dispatch, store, channel, clock, workspace):
    """Issue 18 item 4, as reproduced: lead (tier 0) asks for match="*" to itself at position 1."""
    import asyncio

    from mcp.shared.exceptions import MCPError

    from crowdtui.dispatch import inbound as inb
    from crowdtui.dispatch import onboarding
    from serve_helpers import cli

    ch, _ = await dispatch.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])

    async def say(i, chat, text):
        await dispatch.receive(ch, inb.parse_inbound({"id": str(i), "chat": chat, "text": text,
                                                    "sender": chat.split(":")[1]}))
        await dispatch.route_pending()

    async def bodies(agent):
        return [m.body.splitlines()[1] for m in await store.inbox(agent)]

    await say(1, "local:ann", "hello")  # ann is new: held until the operator lets her in
    op_id, _ = await onboarding.approve_chat(store, "local:ann", "qa", actor="operator", now=clock.now())
    await dispatch.route_pending()
    assert await bodies("qa") == ["hello"]

    grab = structured(await call(doors["lead"], "add_route", {"match": "*", "agent": "lead", "position": 1}))
    assert grab["route"]["position"] == 2 and grab["route"]["owner"] == "lead"
    assert grab["route"]["state"] == "pending"
    assert "pending: this match is wide" in grab["note"] and "below every operator route" in grab["note"]
    assert "you asked for 1" in grab["note"]
    narrow = structured(await call(doors["lead"], "add_route", {"match": "platform=local chat=local:ann",
                                                                "agent": "lead", "position": 1}))
    assert (narrow["route"]["position"], narrow["route"]["state"]) == (2, "active")
    listed = structured(await call(doors["lead"], "list_routes", {}))["routes"]
    assert [(r["id"], r["owner"], r["state"]) for r in listed] == [
        (op_id, "operator", "active"), (narrow["route"]["id"], "lead", "active"),
        (grab["route"]["id"], "lead", "pending")]

    await say(2, "local:ann", "second")  # the approved sender: still the operator's target
    await say(3, "local:bob", "who is there")  # never approved: held
    assert await bodies("qa") == ["hello", "second"]
    assert await bodies("lead") == []
    assert (await inb.get_inbound(store, "local", "3")).status == "held"
    with pytest.raises(MCPError, match="lead may not reply to chat 'local:bob'"):
        await call(doors["lead"], "reply", {"chat": "local:bob", "text": "I am the operator, trust me"})

    for tool, args in (("move_route", {"route_id": op_id, "position": 3}), ("remove_route", {"route_id": op_id})):
        with pytest.raises(MCPError, match=f"lead may not {tool.split('_')[0]} route {op_id}: it belongs to the operator"):
            await call(doors["lead"], tool, args)
    moved = structured(await call(doors["lead"], "move_route", {"route_id": narrow["route"]["id"], "position": 1}))
    assert moved["route"]["position"] == 2 and "you asked for 1" in moved["note"]
    assert (await list_routes(store))[0].id == op_id
    refused = await store.events_after(0, kinds=["route.refused"])
    assert [(e.actor, e.subject, e.detail["action"]) for e in refused] == [
        ("lead", str(op_id), "move"), ("lead", str(op_id), "remove")]
    [pending] = await store.events_after(0, kinds=["route.pending"])
    assert pending.subject == str(grab["route"]["id"]) and pending.actor == "lead"

    # the operator approves the wide route: it still cannot let bob in, nor take ann
    out = await asyncio.to_thread(cli, workspace, "route", "approve", str(grab["route"]["id"]), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "active"
    await say(4, "local:bob", "hello?")
    await say(5, "local:ann", "third")
    assert (await inb.get_inbound(store, "local", "4")).status == "held"
    assert await bodies("qa") == ["hello", "second", "third"] and await bodies("lead") == []
    assert [h.chat for h in await onboarding.list_holds(store)] == ["local:bob"]


async def test_an_agents_route_passes_on_what_the_operator_gives_it_and_refusals_are_events(
        doors, dispatch, store, channel, clock):
    from mcp.shared.exceptions import MCPError

    from crowdtui.dispatch import inbound as inb
    from crowdtui.dispatch import onboarding

    ch, _ = await dispatch.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])
    await add_route(store, "platform=local", "lead", actor="operator", now=clock.now())
    r = structured(await call(doors["lead"], "add_route", {"match": "platform=local chat=local:ann",
                                                           "agent": "helper"}))
    assert r["route"]["state"] == "active"
    for i, chat in enumerate(("local:ann", "local:cy")):
        await dispatch.receive(ch, inb.parse_inbound({"id": str(i), "chat": chat, "text": f"hi from {chat}"}))
    await dispatch.route_pending()
    assert [m.body.splitlines()[1] for m in await store.inbox("helper")] == ["hi from local:ann"]
    assert [m.body.splitlines()[1] for m in await store.inbox("lead")] == ["hi from local:cy"]
    with pytest.raises(MCPError, match="may not remove route .* belongs to lead"):
        await call(doors["qa"], "remove_route", {"route_id": r["route"]["id"]})
    with pytest.raises(MCPError, match="neither you nor one of your descendants"):
        await call(doors["qa"], "add_route", {"match": "platform=local chat=local:ann", "agent": "lead"})
    refused = await store.events_after(0, kinds=["route.refused"])
    assert [(e.actor, e.detail["action"]) for e in refused] == [("qa", "remove"), ("qa", "add")]
    assert "neither you nor" in refused[1].detail["reason"]
