"""Keyboard: help lists every key, the command palette, the filter, live roster edits."""

from __future__ import annotations

from textual.command import CommandPalette
from textual.widgets import Input, TabbedContent

from crowdtui.tui.screens.compose import ComposeScreen
from crowdtui.tui.screens.help import KEYS, HelpScreen
from crowdtui.tui.widgets.agent_list import AgentList
from tests.tui.conftest import add_agent, store_app, wait_for


async def test_help_lists_every_bound_key(workspace):
    app = store_app(workspace)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("question_mark")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        shown = " ".join(k for _, k, _ in KEYS)
        for binding in app.BINDINGS:
            key = binding.key.split(",")[0]
            display = {"question_mark": "?", "colon": ":", "slash": "/",
                       "ctrl+right_square_bracket": "ctrl+]"}.get(key, key)
            assert display in shown, f"{display} ({binding.action}) is missing from the help"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_palette_switches_views_and_composes(workspace, store):
    add_agent(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("alice"))
        await pilot.press("colon")
        await wait_for(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"view docs")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "view-documents")
        await pilot.press("colon")
        await wait_for(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"message alice")
        await pilot.pause(0.5)
        await pilot.press("enter")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen) and app.screen)
        assert screen.query_one("#compose-to", Input).value == "alice"
        await pilot.press("escape")
        # starting needs containers: with none, the palette's start says why instead
        await pilot.press("colon")
        await wait_for(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"start alice")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("containers are unavailable" in str(n.message)
                                          for n in app._notifications))


async def test_filter_narrows_the_agent_list(workspace):
    for n in ("alice", "bob", "alfred"):
        add_agent(workspace, n)
    app = store_app(workspace)
    async with app.run_test(size=(100, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("alfred"))
        await pilot.press("slash", "a", "l")
        await wait_for(pilot, lambda: [r.name for r in agents.rows_shown] == ["alfred", "alice"])
        await pilot.press("enter")
        assert app.focused is agents
        await pilot.press("slash", "backspace", "backspace", "enter")
        await wait_for(pilot, lambda: len(agents.rows_shown) == 4)


async def test_roster_edits_on_disk_appear_live(workspace, store):
    add_agent(workspace, "alice")
    app = store_app(workspace, watch_roster=True)
    async with app.run_test(size=(100, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("alice"))
        await pilot.pause(0.5)  # the watcher is up
        add_agent(workspace, "alice/helper")
        row = await wait_for(pilot, lambda: agents.row("helper"), 30, what="new agent listed")
        assert (row.tier, row.parent) == (1, "alice")
        assert [r.name for r in agents.rows_shown] == ["operator", "alice", "helper"]
        (workspace.agents_dir / "alice" / "helper" / "AGENT.md").unlink()
        await wait_for(pilot, lambda: agents.row("helper") is None, 30, what="removed agent gone")
    assert await store.get_agent("helper") is None
