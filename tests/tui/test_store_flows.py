"""Console flows that need only the store: messages, documents, attention, activity."""

from __future__ import annotations

from textual.widgets import DataTable, TextArea, Input

from crowdtui.tui.screens.compose import ComposeScreen
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.inbox_view import InboxView
from tests.tui.conftest import add_agent, store_app, wait_for


def roster(ws, *paths):
    for p in paths:
        add_agent(ws, p)


async def test_compose_reaches_the_agents_inbox(workspace, store):
    roster(workspace, "alice", "bob")
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("alice"), what="alice in the list")
        agents.select("alice")
        await pilot.pause()
        await pilot.press("c")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen)
        assert screen.query_one("#compose-to", Input).value == "alice"
        screen.query_one(TextArea).text = "please summarise SOP-001"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen), what="sent")
    inbox = await store.inbox("alice")
    assert [(m.sender, m.body) for m in inbox] == [("operator", "please summarise SOP-001")]
    assert await store.inbox("bob") == []
