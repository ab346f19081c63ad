"""Documents routed to the operator, agents that need the operator, the activity feed."""

from __future__ import annotations

from textual.widgets import Input

from crowdtui.tui.app import CrowdApp
from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.screens.form import FormScreen
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.documents_view import DocumentsView
from tests.tui.conftest import add_agent, registered, store_app, wait_for


async def doc_for_approval(store, author="alice", reviewer="qa"):
    await registered(store, author, reviewer)
    doc = await store.create_document(author, "SOP", "Backups", "keep three copies\n")
    await store.checkout(doc.id, author)
    await store.checkin(doc.id, author, "keep three copies\noff site\n", note="off site")
    await store.route(doc.id, author, "review", [reviewer])
    await store.review(doc.id, reviewer, "recommend", "fine")
    await store.route(doc.id, author, "approval", ["operator"])
    return doc.id


async def test_approve_a_document_routed_to_the_operator(workspace, store):
    for n in ("alice", "qa"):
        add_agent(workspace, n)
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("qa"))
        doc_id = await doc_for_approval(store)
        await pilot.press("3")
        board = app.query_one(DocumentsView)
        await wait_for(pilot, lambda: doc_id in board.tasks, what="the task on the board")
        assert board.current.id == doc_id and board.current.state == "IN_APPROVAL"
        await pilot.press("A")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        form.query_one("#form-comment", Input).value = "approved for production"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not board.tasks, what="the task done")
    doc = await store.get_document(doc_id)
    assert doc.state == "EFFECTIVE"
    approved = [e for e in await store.history(doc_id) if e.kind == "doc.approved"]
    assert [(e.actor, e.detail["comment"]) for e in approved] == [
        ("operator", "approved for production")]
    assert await store.pending_tasks("operator") == []


async def test_reject_needs_a_reason_and_a_refused_action_changes_nothing(workspace, store):
    for n in ("alice", "qa"):
        add_agent(workspace, n)
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("qa"))
        doc_id = await doc_for_approval(store)
        await pilot.press("3")
        board = app.query_one(DocumentsView)
        await wait_for(pilot, lambda: doc_id in board.tasks)
        await pilot.press("X")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert app.screen is form and "needed" in str(form.query_one("#form-error").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        assert (await store.get_document(doc_id)).state == "IN_APPROVAL"
        # approving twice: the store refuses the second time, the app says so, nothing moves
        await store.approve(doc_id, "operator", None)
        await pilot.press("A")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications),
                       what="an error notification")
    assert (await store.get_document(doc_id)).state == "EFFECTIVE"


async def test_open_a_document_and_diff_two_versions(workspace, store):
    add_agent(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("alice"))
        doc = await store.create_document("alice", "SOP", "Backups", "one\ntwo\n")
        await store.checkout(doc.id, "alice")
        await store.checkin(doc.id, "alice", "one\n2\nthree\n", note="fix")
        await pilot.press("a", "3")  # every agent's documents
        board = app.query_one(DocumentsView)
        await wait_for(pilot, lambda: board.current is not None)
        board.query_one("#docs-table").focus()
        await pilot.press("enter")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DocumentScreen) and app.screen)
        await wait_for(pilot, lambda: len(screen.versions) == 2, what="versions listed")
        await screen.select_diff(1, 2)
        await pilot.pause()
        text = str(screen.query_one("#doc-text").render())
        assert "-two" in text and "+2" in text and "+three" in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, DocumentScreen))


class BellCounting(CrowdApp):
    bells = 0

    def bell(self) -> None:
        self.bells += 1
        super().bell()


async def test_an_agent_that_starts_waiting_floats_up_with_a_notice_and_a_bell(workspace, store):
    for n in ("alice", "bob", "carol"):
        add_agent(workspace, n)
    app = BellCounting(workspace, docker=False, hub=False, watch_roster=False, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("carol"))
        await registered(store, "alice", "bob", "carol")
        for n in ("alice", "bob", "carol"):
            await store.set_agent_state(n, "running", actor="runtime")
        await wait_for(pilot, lambda: agents.row("carol").state == "running")
        assert [r.name for r in agents.rows_shown] == ["operator", "alice", "bob", "carol"]
        await store.set_agent_status("carol", "waiting", "which backup target?", actor="carol")
        await wait_for(pilot, lambda: agents.rows_shown[1].name == "carol", what="carol up")
        row = agents.rows_shown[1]
        assert (row.state, row.note) == ("waiting for input", "which backup target?")
        assert app.bells == 1
        assert any("carol is waiting for you: which backup target?" in str(n.message)
                   for n in app._notifications)
        # back to work: she sinks back into tree order, and no second bell
        await store.set_agent_status("carol", "working", "", actor="carol")
        await wait_for(pilot, lambda: agents.rows_shown[-1].name == "carol")
        assert agents.rows_shown[-1].state == "working" and app.bells == 1


async def test_activity_feed_follows_events_and_filters(workspace, store):
    for n in ("alice", "bob"):
        add_agent(workspace, n)
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("bob"))
        await registered(store, "alice", "bob")
        await store.send_message("alice", "bob", "hi bob")
        await store.create_document("bob", "SOP", "Runbook")
        await pilot.press("4")
        feed = app.query_one(ActivityView)
        await wait_for(pilot, lambda: any(e.kind == "doc.created" for e in feed.events))
        kinds = {e.kind for e in feed.shown}
        assert {"message.sent", "doc.created"} <= kinds
        feed.set_filter(kind="doc.")
        assert {e.kind for e in feed.shown} == {"doc.created"}
        feed.set_filter(agent="alice", kind="")
        assert feed.shown and all("alice" in (e.actor + e.subject) for e in feed.shown)
        assert "message.sent" in {e.kind for e in feed.shown}


async def test_route_for_review_and_break_a_lock_from_the_board(workspace, store):
    for n in ("alice", "qa"):
        add_agent(workspace, n)
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.query_one(AgentList).row("qa"))
        await registered(store, "alice", "qa")
        doc = await store.create_document("alice", "SOP", "Backups", "v1\n")
        await store.checkout(doc.id, "alice")
        await pilot.press("a", "3")
        board = app.query_one(DocumentsView)
        await wait_for(pilot, lambda: board.current is not None and board.current.holder == "alice")
        # routing while alice holds it is refused, and says why
        await pilot.press("O")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        form.query_one("#form-assignees", Input).value = "qa"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("checked out by alice" in str(n.message)
                                          for n in app._notifications), what="refusal shown")
        assert (await store.get_document(doc.id)).state == "DRAFT"
        await pilot.press("L")  # the operator breaks the lock
        await wait_for(pilot, lambda: board.current.holder is None, what="lock broken")
        await pilot.press("O")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        form.query_one("#form-assignees", Input).value = "qa"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: board.current.state == "IN_REVIEW", what="routed")
    assert [t.doc_id for t in await store.pending_tasks("qa")] == [doc.id]
    kinds = [e.kind for e in await store.history(doc.id)]
    assert "doc.lock_broken" in kinds and "doc.routed" in kinds
