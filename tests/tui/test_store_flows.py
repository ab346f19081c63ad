"""Console flows that need only the store: compose, reply, broadcast, mark read."""

from __future__ import annotations

from textual.widgets import Input, TextArea

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


async def test_compose_to_an_unknown_agent_keeps_the_draft_and_sends_nothing(workspace, store):
    roster(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("alice"))
        await pilot.press("c")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen)
        screen.query_one("#compose-to", Input).value = "nobody"
        screen.query_one(TextArea).text = "hello?"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.screen is screen, "the compose dialog stays open"
        error = str(screen.query_one("#compose-error").render())
        assert "Not sent" in error and "nobody" in error
        assert screen.query_one(TextArea).text == "hello?"
        # an empty body is refused before the store is asked
        screen.query_one(TextArea).text = "   "
        screen.query_one("#compose-to", Input).value = "alice"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "empty" in str(screen.query_one("#compose-error").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    assert await store.inbox("alice") == []
    assert await store.events_after(0, kinds=["message.sent"]) == []


async def test_reply_and_mark_read_in_the_operators_inbox(workspace, store):
    roster(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("alice"))
        await store.send_message("alice", "operator", "may I delete /tmp?", priority="high")
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("operator").unread == 1, what="unread count")
        agents.select("operator")
        await pilot.press("2")
        inbox = app.query_one(InboxView)
        await wait_for(pilot, lambda: inbox.current is not None, what="the message listed")
        assert inbox.current.body == "may I delete /tmp?"
        await pilot.press("m")
        await wait_for(pilot, lambda: agents.row("operator").unread == 0, what="marked read")
        await pilot.press("R")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen)
        assert screen.query_one("#compose-to", Input).value == "alice"
        screen.query_one(TextArea).text = "yes, go ahead"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    (reply,) = await store.inbox("alice")
    original = (await store.inbox("operator"))[0]
    assert (reply.sender, reply.body, reply.thread) == ("operator", "yes, go ahead", str(original.id))
    assert original.read_at is not None


async def test_broadcast_to_a_selection(workspace, store):
    roster(workspace, "alice", "bob", "carol")
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("carol"))
        await pilot.press("b")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen)
        from textual.widgets import SelectionList
        choices = screen.query_one(SelectionList)
        choices.deselect("bob")
        screen.query_one(TextArea).text = "stand-up in 5"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ComposeScreen))
    assert [m.body for m in await store.inbox("alice")] == ["stand-up in 5"]
    assert [m.body for m in await store.inbox("carol")] == ["stand-up in 5"]
    assert await store.inbox("bob") == []


async def test_the_status_bar_says_when_the_engine_is_unreachable_and_when_it_is_back(workspace, store):
    """The state follower records engine.unreachable / engine.reachable (tests/faults cover
    that against a real dockerd); the console's status bar follows them from the store."""
    roster(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(160, 40)) as pilot:
        bar = app.query_one("#status-bar")
        await wait_for(pilot, lambda: app.query_one(AgentList).row("alice"), what="alice in the list")
        await store.append_event("runtime", "engine.unreachable", "", {"error": "connection refused"})
        await wait_for(pilot, lambda: "engine unreachable since" in str(bar.render()), what="the outage shown")
        await store.append_event("runtime", "engine.reachable", "", {})
        await wait_for(pilot, lambda: "engine unreachable" not in str(bar.render()), what="the outage cleared")
