"""The crew's approval queue in the console: requests opened by agents (the real
request_permission, waiting on the real store) are counted in the status bar, float their
agents up with a bell, and are answered from the Approvals screen (P) with y / Y / n / N;
"always" rules are listed and revoked there; hostile titles and diffs stay inert."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Static

from crowdtui.hub.approvals import request_permission
from crowdtui.tui.crew import merge_rows
from crowdtui.tui.screens.approvals import ApprovalsScreen
from crowdtui.tui.screens.form import FormScreen
from crowdtui.tui.screens.help import APPROVAL_KEYS, HelpScreen
from crowdtui.tui.widgets.agent_list import AgentList
from qms import permissions
from tests.tui.conftest import add_agent, registered, store_app, wait_for

HOSTILE = "\x1b[2J\x1b]0;pwned\x07[bold red]boom[/]"


def status_text(app) -> str:
    return str(app._main.query_one("#status-bar", Static).render())


def screen_text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def ask(store, agent, tool, title, diff=None):
    return asyncio.create_task(request_permission(store, agent=agent, tool=tool, title=title, diff=diff,
                                                  timeout=60))


async def test_two_agents_requests_wait_in_one_queue_and_are_answered_by_keys(workspace, store):
    for name in ("alice", "bob", "carol"):
        add_agent(workspace, name)
    app = store_app(workspace)
    bells = []
    app.bell = lambda: bells.append(1)
    waiting: list[asyncio.Task] = []
    async with app.run_test(size=(140, 40)) as pilot:
        await registered(store, "alice", "bob", "carol")
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("carol"), what="roster")
        waiting.append(ask(store, "carol", "edit", "Write notes.md", diff="--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n"))
        await wait_for(pilot, lambda: len(app.permission_requests) == 1, what="the first request")
        waiting.append(ask(store, "bob", "execute", f"make {HOSTILE}", diff=f"+{HOSTILE}\n"))
        await wait_for(pilot, lambda: "2 ask permission (P)" in status_text(app), what="the count")
        assert len(bells) == 2
        assert any("carol asks permission for edit: Write notes.md" in str(n.message) for n in app._notifications)
        # the asking agents float up, above alice who asks nothing
        await wait_for(pilot, lambda: [r.name for r in agents.rows_shown][1:3] == ["bob", "carol"],
                       what="bob and carol floated up")
        assert agents.row("carol").state == "asks permission"

        await pilot.press("P")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        table = screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, what="two rows")
        assert "+new" in screen_text(screen, "#approvals-text")  # the oldest first, with its diff
        await pilot.press("y")
        carol = await asyncio.wait_for(waiting[0], 10)
        assert (carol.outcome, carol.answered_by) == ("allow_once", "operator")
        await wait_for(pilot, lambda: table.row_count == 1, what="one left")
        shown = screen_text(screen, "#approvals-text") + screen_text(screen, "#approvals-title")
        assert "\x1b" not in shown and "\x07" not in shown and "\\x1b]0;pwned\\x07[bold red]boom[/]" in shown
        await pilot.press("N")
        bob = await asyncio.wait_for(waiting[1], 10)
        assert (bob.outcome, bob.allowed) == ("reject_always", False)
        await wait_for(pilot, lambda: table.row_count == 0 and "ask permission" not in status_text(app),
                       what="an empty queue")
        await wait_for(pilot, lambda: agents.row("bob").state != "asks permission", what="bob back in place")

        # the rule: listed, then revoked after a confirmation
        await pilot.press("u")
        await wait_for(pilot, lambda: screen.showing_rules and table.row_count == 1, what="the rule")
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: table.row_count == 0, what="the rule revoked")
        assert await permissions.list_rules(store) == []

        await pilot.press("question_mark")
        help_screen = await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen)
        assert help_screen.keys is APPROVAL_KEYS
        keys = " ".join(k for _, k, _ in APPROVAL_KEYS)
        for binding in ApprovalsScreen.BINDINGS:  # every key of the screen is explained there
            shown = {"question_mark": "?"}.get(binding.key, binding.key)
            assert shown == "?" or shown in keys, f"{shown} ({binding.action}) is missing from the help"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalsScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalsScreen))
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    kinds = [e.kind for e in await store.events_after(0, kinds="permission.*")]
    assert kinds.count("permission.requested") == 2 and kinds.count("permission.answered") == 2
    assert "permission.rule_revoked" in kinds


async def test_a_request_answered_elsewhere_leaves_the_open_screen_and_a_new_one_arrives(workspace, store):
    add_agent(workspace, "dave")
    app = store_app(workspace)
    async with app.run_test(size=(100, 30)) as pilot:
        await registered(store, "dave")
        await pilot.press("P")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ApprovalsScreen) and app.screen)
        assert "nothing waits for you" in screen_text(screen, "#approvals-title")
        await pilot.press("y")  # nothing to answer: said, nothing breaks
        await wait_for(pilot, lambda: any("no permission request waits" in str(n.message)
                                          for n in app._notifications))
        task = ask(store, "dave", "edit", "Write x")
        table = screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the new request on the open screen")
        [req] = await permissions.list_requests(store)
        await permissions.answer_request(store, req.id, "reject_once", actor="operator", now=0.0)  # the CLI's way
        await wait_for(pilot, lambda: table.row_count == 0, what="the answered request gone")
        assert (await asyncio.wait_for(task, 10)).outcome == "reject_once"


def test_an_agent_with_pending_requests_needs_the_operator_unless_it_crashed():
    rows = merge_rows([{"name": "a", "state": "running"}, {"name": "b", "state": "crashed"},
                       {"name": "c", "state": "running"}], permissions={"a": 2, "b": 1})
    by = {r.name: r for r in rows}
    assert (by["a"].state, by["a"].note, by["a"].needs_operator) == ("asks permission", "2 permission requests (P)",
                                                                     True)
    assert by["b"].state == "crashed" and by["c"].state == "running"
    assert [r.name for r in rows] == ["operator", "a", "b", "c"]  # those who need the operator first
