"""The console and the hub: its own hub in-process, or the one another process runs."""

from __future__ import annotations

import pytest
from textual.widgets import TextArea

from crowdtui.hub.hub import Hub
from crowdtui.tui.app import CrowdApp
from crowdtui.tui.screens.compose import ComposeScreen
from crowdtui.tui.widgets.agent_list import AgentList
from tests.tui.conftest import add_agent, wait_for, wait_store


async def test_uses_the_hub_another_process_runs(workspace, store):
    add_agent(workspace, "alice")
    hub = Hub(workspace, store)
    await hub.start()
    try:
        app = CrowdApp(workspace, docker=False, watch_roster=False, poll_interval=0.05)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.hub_mode != "none", what="hub status")
            assert app.hub_mode == "other" and app.hub is None
            assert "hub: other" in str(app.query_one("#status-bar").render())
    finally:
        await hub.stop()
    # and with no hub running, the app starts its own and stops it on quit
    app = CrowdApp(workspace, docker=False, watch_roster=False, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.hub_mode == "own", what="own hub")
    starts = await store.events_after(0, kinds=["hub.started", "hub.stopped"])
    assert [e.kind for e in starts][-2:] == ["hub.started", "hub.stopped"]


@pytest.mark.docker
async def test_the_scripted_agent_answers_into_the_operators_inbox(workspace, store, docker_client,
                                                                   agent_image):
    add_agent(workspace, "echo", command="[crowd-agent, --role, echo]")
    app = CrowdApp(workspace, watch_roster=False, poll_interval=0.1, live_stats=False)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and app.hub_mode == "own"
                       and agents.row("echo"), 30, what="runtime, hub and roster")
        agents.select("echo")
        await pilot.pause()
        await pilot.press("s")
        await wait_for(pilot, lambda: agents.row("echo").running, 60, what="echo running")
        await pilot.press("c")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen)
        screen.query_one(TextArea).text = "ping from the console"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen))
        answers = await wait_store(
            lambda: _answers(store), 60, what="the echo agent's answer in the operator's inbox")
        assert answers == ["echo: ping from the console"]
        await wait_for(pilot, lambda: agents.row("operator").unread >= 1, what="unread shown")


async def _answers(store):
    return [m.body for m in await store.inbox("operator") if m.sender == "echo"]


@pytest.mark.docker
async def test_own_hub_announces_new_mail_in_the_agents_terminal(workspace, store, docker_client,
                                                                  agent_image):
    """With its own hub, the console runs the hub's announcer through its shared sessions:
    a message to an agent shows up as a typed ``[crowd]`` notice in that agent's terminal."""
    from crowdtui.tui.widgets.terminal_pane import TerminalPane

    add_agent(workspace, "shell", command="[cat]")  # cat echoes what is typed into it
    app = CrowdApp(workspace, watch_roster=False, poll_interval=0.1, live_stats=False)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and app.hub_mode == "own"
                       and agents.row("shell"), 30, what="runtime, hub and roster")
        await wait_for(pilot, lambda: app._policies_started, what="hub policies running")
        agents.select("shell")
        await wait_for(pilot, lambda: app.selected == "shell", what="shell selected")  # as a user sees it first
        await pilot.press("s")
        await wait_for(pilot, lambda: agents.row("shell").running, 60, what="shell running")
        pane = app.query_one(TerminalPane)
        await wait_for(pilot, lambda: pane.terminal is not None, what="terminal attached")
        await store.send_message("operator", "shell", "please look at SOP-001")
        await wait_for(
            pilot, lambda: "[crowd] 1 new message" in "\n".join(pane.terminal.emulator.text()), 30,
            what="the notice typed into the agent's terminal")
