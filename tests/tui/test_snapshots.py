"""Snapshots of the main views at 80x24 and 160x48 (fixed times, no live CPU figures)."""

from __future__ import annotations

import asyncio

import pytest
from qms import Store

from crowdtui.tui.app import CrowdApp
from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.documents_view import DocumentsView
from crowdtui.tui.widgets.inbox_view import InboxView
from tests.tui.conftest import wait_for

SIZES = [(80, 24), (160, 48)]


async def seed(ws) -> None:
    from crowdtui.roster import load_roster, sync_roster

    store = await Store.open(ws.db_path)
    try:
        await sync_roster(store, load_roster(ws))
        for name in ("lead", "researcher", "qa"):
            await store.set_agent_state(name, "running", actor="runtime")
        await store.set_agent_status("lead", "working", "planning the backup SOP", actor="lead")
        await store.set_agent_status("qa", "waiting", "SOP-001 needs your approval", actor="qa")
        await store.set_agent_state("echo", "crashed", detail={"exit_code": 3}, actor="runtime")
        await store.send_message("lead", "operator", "Plan: 1) research 2) write SOP-001",
                                 priority="high")
        await store.send_message("qa", "operator", "Reviewed SOP-001: recommend.")
        await store.send_message("operator", "lead", "Go ahead.")
        doc = await store.create_document("lead", "SOP", "Backups", "keep three copies\n")
        await store.checkout(doc.id, "lead")
        await store.checkin(doc.id, "lead", "keep three copies\none off site\n", note="off site")
        await store.route(doc.id, "lead", "review", ["qa"])
        await store.review(doc.id, "qa", "recommend", "complete")
        await store.route(doc.id, "lead", "approval", ["operator"])
        await store.create_document("researcher", "SPEC", "Storage options", "tape, disk\n")
    finally:
        await store.close()


def make_app(ws) -> CrowdApp:
    return CrowdApp(ws, docker=False, hub=False, watch_roster=False, poll_interval=0.05,
                    time_format=lambda ts: "12:00:00", live_stats=False)


def ready(view: str):
    async def run_before(pilot) -> None:
        app = pilot.app
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("researcher") and agents.row("operator").unread == 3,
                       what="rows loaded")
        if view != "document":
            await pilot.press(view)
        if view == "2":
            agents.select("operator")
            inbox = app.query_one(InboxView)
            await wait_for(pilot, lambda: inbox.owner == "operator" and len(inbox.messages) == 3)
        if view == "3":
            board = app.query_one(DocumentsView)
            await wait_for(pilot, lambda: board.tasks and board.agent == "operator"
                           and len(board.documents) == 1)
        if view == "4":
            feed = app.query_one(ActivityView)
            await wait_for(pilot, lambda: any(e.kind == "doc.state" for e in feed.events))
            await pilot.pause(0.2)
            feed.set_filter(kind="message.")  # checkout events carry lease times: left out
        if view == "document":
            await pilot.press("3")
            board = app.query_one(DocumentsView)
            await wait_for(pilot, lambda: board.tasks and board.agent == "operator")
            app.push_screen(DocumentScreen("SOP-001"))
            screen = await wait_for(pilot, lambda: isinstance(app.screen, DocumentScreen)
                                    and app.screen)
            await wait_for(pilot, lambda: len(screen.versions) == 2)
            await screen.select_diff(1, 2)
        else:
            agents.focus()
        app.clear_notifications()
        await pilot.pause(0.3)
        await pilot.wait_for_scheduled_animations()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("view", ["1", "2", "3", "4", "?", "document"],
                         ids=["terminal", "inbox", "documents", "activity", "help", "document"])
def test_view_snapshot(sample_workspace, snap_compare, size, view):
    asyncio.run(seed(sample_workspace))
    assert snap_compare(make_app(sample_workspace), terminal_size=size, run_before=ready(view))
