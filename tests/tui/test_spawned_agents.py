"""The console shows what agents do to agents: a child spawned through MCP appears in the
agent list, runs, and leaves it when retired (the console's own host, a real container)."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from crowdtui.hub.unix_transport import unix_client
from crowdtui.tui.app import CrowdApp
from crowdtui.tui.widgets.agent_list import AgentList
from tests.tui.conftest import add_agent, wait_for


def structured(result) -> dict:
    return result.structured_content if result.structured_content is not None else json.loads(result.content[0].text)


@pytest.mark.docker
async def test_a_spawned_child_appears_in_the_console_runs_and_goes_when_retired(workspace, store, agent_image):
    add_agent(workspace, "boss")
    app = CrowdApp(workspace, poll_interval=0.1, live_stats=False)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and app.hub_mode == "own" and agents.row("boss"),
                       30, what="runtime, hub and roster")
        agents.select("boss")  # the operator starts boss; its door opens as it runs
        await pilot.pause()
        await pilot.press("s")
        sock = workspace.ipc_dir("boss") / "mcp.sock"
        await wait_for(pilot, lambda: agents.row("boss").running and sock.exists(), 60, what="boss running, its door open")
        async with Client(unix_client(sock)) as boss:
            spawned = structured(await boss.call_tool("spawn_agent", {
                "name": "kid", "description": "spawned by boss",
                "definition": {"command": ["crowd-agent", "--role", "echo", "--poll", "0.3"]}, "start": True}))
            assert (spawned["parent"], spawned["state"]) == ("boss", "running")  # spawned and started in one call
            await wait_for(pilot, lambda: agents.row("kid"), 30, what="the spawned child in the agent list")
            await wait_for(pilot, lambda: agents.row("kid") and agents.row("kid").running, 30, what="kid running")
            await boss.call_tool("retire_agent", {"name": "kid"})
            await wait_for(pilot, lambda: agents.row("kid") is None, 30, what="kid gone from the list")
    assert await store.get_agent("kid") is None
