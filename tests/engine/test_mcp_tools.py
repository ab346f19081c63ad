"""The engine's MCP tools over the hub's real per-agent unix sockets."""

from __future__ import annotations

import json

import pytest

from crowdtui.engine.mcp_tools import ENGINE_TOOLS, add_engine_tools
from crowdtui.engine.routes import add_route, list_routes
from crowdtui.roster import AgentDef

CREW = [("lead", "lead", 0, None), ("helper", "lead/helper", 1, "lead"), ("qa", "qa", 0, None)]


def structured(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


@pytest.fixture
async def doors(workspace, store, engine):
    from crowdtui.hub.hub import Hub

    defs = {n: AgentDef(name=n, file=workspace.agents_dir / rel / "AGENT.md", rel_path=rel, tier=t, parent=p,
                        children=tuple(c for c, _, _, pp in CREW if pp == n))
            for n, rel, t, p in CREW}
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    add_engine_tools(hub.server, engine)
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
    assert set(ENGINE_TOOLS) <= names
    async with Client(unix_client(doors["helper"])) as c:  # tier 1: may look, not change
        names = {t.name for t in (await c.list_tools()).tools}
    assert names & set(ENGINE_TOOLS) == {"reply", "list_routes", "list_tasks"}


async def test_reply_only_to_chats_routed_to_the_caller_or_its_children(doors, engine, store, channel, clock):
    from mcp.shared.exceptions import MCPError

    ch, _ = await engine.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])
    await add_route(store, "platform=local", "helper", actor="operator", now=clock.now())
    from crowdtui.engine.inbound import parse_inbound

    await engine.receive(ch, parse_inbound({"id": "1", "chat": "local:ann", "text": "hi"}))
    await engine.route_pending()
    with pytest.raises(MCPError, match="reply has no parameter 'as'"):  # refused, not ignored (issue 18)
        await call(doors["helper"], "reply", {"chat": "local:ann", "text": "hello Ann", "as": "qa"})
    r = structured(await call(doors["helper"], "reply", {"chat": "local:ann", "text": "hello Ann"}))
    assert r["chat"] == "local:ann"
    structured(await call(doors["lead"], "reply", {"chat": "local:ann", "text": "from the parent"}))
    with pytest.raises(MCPError, match="qa may not reply to chat"):
        await call(doors["qa"], "reply", {"chat": "local:ann", "text": "not mine"})
    assert await engine.send_due() == 2
    assert [(s["from"], s["text"]) for s in channel.sent] == [("helper", "hello Ann"), ("lead", "from the parent")]


async def test_route_and_task_tools_need_authority_and_stay_in_the_callers_tree(doors, store):
    from mcp.shared.exceptions import MCPError

    r = structured(await call(doors["lead"], "add_route", {"match": "platform=local", "agent": "helper"}))
    assert r["route"]["agent"] == "helper"
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
