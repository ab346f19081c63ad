"""Snapshots of the new views at 80x24 and 160x48 (fixed times), as tests/tui/test_snapshots.py
does for the others: routes, scheduled tasks, channels, secrets, the document menu, search."""

from __future__ import annotations

import asyncio

import pytest
from qms import Store, channels, inbound

from crowdtui.tui.screens.choice import ChoiceScreen
from crowdtui.tui.screens.search import SearchScreen
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.channels_view import ChannelsView
from crowdtui.tui.widgets.documents_view import DocumentsView
from crowdtui.tui.widgets.routes_view import RoutesView
from crowdtui.tui.widgets.secrets_view import SecretsView
from crowdtui.tui.widgets.tasks_view import TasksView
from tests.tui.conftest import wait_for
from tests.tui.test_snapshots import SIZES, make_app
from tests.tui.test_snapshots import seed as seed_crew

NOW = 1_800_000_000.0


async def seed(ws) -> None:
    from crowdtui.dispatch.routes import add_route
    from crowdtui.dispatch.tasks import add_task, set_paused
    from crowdtui.secrets import Vault

    await seed_crew(ws)
    store = await Store.open(ws.db_path)
    try:
        await add_route(store, "platform=telegram room=-100*", "lead", actor="operator", now=NOW)
        await add_route(store, "sender=boss*", "qa", actor="operator", now=NOW)
        await add_task(store, name="standup", agent="lead", schedule="every:1h", text="post the standup",
                       actor="operator", now=NOW)
        await add_task(store, name="backup-check", agent="qa", schedule="cron:0 9 * * 1-5",
                       text="check last night's backup", actor="operator", now=NOW)
        await set_paused(store, "backup-check", True, actor="operator", now=NOW)
        await channels.register_channel(store, name="tg", platform="telegram", prefixes=["tg:"],
                                        callback_url="http://127.0.0.1:9/cb", now=NOW)
        await channels.register_channel(store, name="mx", platform="matrix", prefixes=["mx:"],
                                        callback_url="http://127.0.0.1:9/mx", now=NOW)
        await inbound.store_arrivals(store, [inbound.Arrival(
            "tg", "telegram", "1", "tg:42", "is the backup done?", sender="u1", sender_name="Ann")], now=NOW)
        for _ in range(3):
            await channels.record_health(store, "mx", False, now=NOW, max_failures=3)
        vault = Vault.open(ws, store)
        await vault.set("ANTHROPIC_API_KEY", "never-shown")
        await vault.set("TELEGRAM_TOKEN", "never-shown-either")
    finally:
        await store.close()


def ready(view: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("researcher") and agents.row("operator").unread == 3,
                       what="rows loaded")
        if view == "menu":
            await pilot.press("3")
            board = app.query_one(DocumentsView)
            await wait_for(pilot, lambda: board.tasks and board.current is not None)
            await pilot.press("w")
            await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        elif view == "search":
            await pilot.press("ctrl+f")
            screen = await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen) and app.screen)
            await pilot.press(*"backup", "enter")
            await wait_for(pilot, lambda: len(screen.hits) >= 2)
            body = screen.query_one("#search-text")
            await wait_for(pilot, lambda: "keep three copies" in str(body.render()), what="the hit's text")
        else:
            widget, count = {"7": (RoutesView, 2), "8": (TasksView, 2), "9": (ChannelsView, 2),
                             "0": (SecretsView, 2)}[view]
            await pilot.press(view)
            shown = app.query_one(widget)
            await wait_for(pilot, lambda: len(shown.items) == count, what=f"{count} rows")
        app.clear_notifications()
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", ["7", "8", "9", "0", "menu", "search"],
                         ids=["routes", "tasks", "channels", "secrets", "menu", "search"])
def test_setup_view_snapshot(sample_workspace, snap_compare, size, view):
    asyncio.run(seed(sample_workspace))
    assert snap_compare(make_app(sample_workspace), terminal_size=size, run_before=ready(view))
