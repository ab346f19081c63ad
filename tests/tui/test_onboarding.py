"""Held chats in the console: held by dispatch's real router, approved or denied from view 6."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Select, Static, TabbedContent

from crowdtui.dispatch import inbound as inb
from crowdtui.dispatch import onboarding
from crowdtui.dispatch.clock import ManualClock
from crowdtui.dispatch.routes import list_routes
from crowdtui.dispatch.service import Dispatch, DispatchConfig
from crowdtui.tui.screens.form import FormScreen
from crowdtui.tui.screens.help import KEYS
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.onboarding_view import OnboardingView
from tests.tui.conftest import add_agent, store_app, wait_for

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc).timestamp()
HOSTILE = "\x1b[2J\x1b]0;pwned\x07[bold red]boom[/] \x9b31m"


@pytest.fixture
async def dispatch(store):
    """The dispatch part of `crowdtui serve`, driven step by step (no loops, no HTTP)."""
    eng = Dispatch(store, clock=ManualClock(T0), config=DispatchConfig(), log=lambda line: None)
    ch, _ = await eng.register(name="local", platform="local", callback_url="http://127.0.0.1:9",
                               prefixes=["local:"])
    eng.channel = ch  # type: ignore[attr-defined]
    yield eng
    await eng.stop()


async def hold(dispatch, i: int, chat: str, text: str, sender: str = "ann") -> None:
    """A message from a chat no route accepts, received and routed by dispatch: held."""
    msg = inb.parse_inbound({"id": str(i), "chat": chat, "text": text, "sender": sender,
                             "sender_name": sender.title()})
    await dispatch.receive(dispatch.channel, msg)
    await dispatch.route_pending()


def held_chats(app) -> list[str]:
    return [h.chat for h in app.query_one(OnboardingView).holds]


def status_text(app) -> str:
    return str(app.query_one("#status-bar", Static).render())


async def test_held_chat_is_listed_and_approved_to_the_chosen_agent(workspace, store, dispatch):
    for name in ("alice", "bob"):
        add_agent(workspace, name)
    app = store_app(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("alice") and agents.row("bob"), what="roster")
        assert app.query_one(TabbedContent).get_tab("view-held").label.plain == "6 Held"
        assert "held" not in status_text(app)
        # messages arrive while the console is open: the router holds them (no route at all)
        await hold(dispatch, 1, "local:stranger", "hi, I am new")
        await hold(dispatch, 2, "local:stranger", "anyone there?", sender="ann")
        assert await store.inbox("alice") == [] and await store.inbox("bob") == []
        await wait_for(pilot, lambda: held_chats(app) == ["local:stranger"], what="hold listed")
        # the operator notices: the tab label and the status bar count it
        tabs = app.query_one(TabbedContent)
        assert tabs.get_tab("view-held").label.plain == "6 Held (1)"
        assert "1 chat(s) held" in status_text(app)
        await pilot.press("6")
        await wait_for(pilot, lambda: tabs.active == "view-held")
        view = app.query_one(OnboardingView)
        row = [str(c) for c in view.query_one(DataTable).get_row_at(0)]
        assert row[0] == "local:stranger" and row[1] == "local" and row[2] == "Ann" and row[3] == "2"
        assert "anyone there?" in row[5]
        # approve: asks which agent, defaulting to the selected one
        agents.select("bob")
        await wait_for(pilot, lambda: app.selected == "bob")
        await pilot.press("A")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        select = form.query_one("#form-agent", Select)
        assert select.value == "bob"
        select.value = "alice"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        await wait_for(pilot, lambda: held_chats(app) == [], what="hold gone after approval")
        assert tabs.get_tab("view-held").label.plain == "6 Held"
        assert "held" not in status_text(app)
    routes = await list_routes(store)
    assert [(r.position, r.agent) for r in routes] == [(1, "alice")]
    # the running serve's router delivers what was held, in order, to the chosen agent
    assert await dispatch.route_pending() == 2
    assert [m.body.splitlines()[1] for m in await store.inbox("alice")] == ["hi, I am new",
                                                                          "anyone there?"]
    assert await store.inbox("bob") == []
    assert await onboarding.list_holds(store) == []
    events = await store.events_after(0, kinds=["onboard.approved"])
    assert [(e.actor, e.subject) for e in events] == [("operator", "local:stranger")]
    # the chat now has its route: a later message goes straight through
    msg = inb.parse_inbound({"id": "3", "chat": "local:stranger", "text": "thanks", "sender": "ann"})
    await dispatch.receive(dispatch.channel, msg)
    await dispatch.route_pending()
    assert len(await store.inbox("alice")) == 3


async def test_deny_from_the_palette_drops_and_hostile_text_is_inert(workspace, store, dispatch):
    add_agent(workspace, "alice")
    await hold(dispatch, 1, "local:friend", "hello")
    # a hostile text the channel API would refuse, stored by a process that skipped the checks
    await dispatch.receive(dispatch.channel, inb.InboundMsg(id="2", chat="local:spam", text=HOSTILE,
                                                        sender="eve"))
    await dispatch.route_pending()
    assert [h.chat for h in await onboarding.list_holds(store)] == ["local:friend", "local:spam"]
    app = store_app(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("alice"), what="roster")
        await wait_for(pilot, lambda: held_chats(app) == ["local:friend", "local:spam"],
                       what="holds listed at start")
        assert "2 chat(s) held" in status_text(app)
        await pilot.press("6")
        view = app.query_one(OnboardingView)
        table = view.query_one(DataTable)
        table.move_cursor(row=1)
        await wait_for(pilot, lambda: view.current is not None and view.current.chat == "local:spam")
        shown = [str(c) for c in table.get_row_at(1)] + [str(view.query_one("#held-last").render())]
        for text in shown:
            assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
        assert any("\\x1b[2J" in t for t in shown), shown
        assert any("[bold red]boom[/]" in t for t in shown), "markup is shown as typed"
        # the palette offers approve and deny for each held chat; deny local:spam from it
        await pilot.press("colon")
        await wait_for(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"deny held chat local:spam")
        results = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: results.option_count >= 1
                       and "deny held chat local:spam" in str(results.get_option_at_index(0).prompt),
                       what="palette hit")
        await pilot.press("enter")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        assert "local:spam" in form.form_title
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: held_chats(app) == ["local:friend"], what="spam denied")
        assert "1 chat(s) held" in status_text(app)
        # escape on a deny leaves the chat held
        await pilot.press("6")
        await wait_for(pilot, lambda: view.current is not None and view.current.chat == "local:friend")
        await pilot.press("X")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        assert held_chats(app) == ["local:friend"]
    assert [h.chat for h in await onboarding.list_holds(store)] == ["local:friend"]
    assert (await inb.get_inbound(store, "local", "2")).status == "denied"
    assert await dispatch.route_pending() == 0
    assert await store.inbox("alice") == []
    assert await list_routes(store) == []
    events = await store.events_after(0, kinds=["onboard.denied"])
    assert [(e.actor, e.subject) for e in events] == [("operator", "local:spam")]


def test_help_lists_the_held_view_keys():
    held = [(k, what) for sec, k, what in KEYS if sec == "Held"]
    assert [k for k, _ in held] == ["A", "X"]
    assert any("6" in k for sec, k, _ in KEYS if sec == "Anywhere")
