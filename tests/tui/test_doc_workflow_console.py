"""Every document transition driven from the console (the menu on ``w`` offers what the state
machine allows from the current state, and only that), over the real store."""

from __future__ import annotations

import sys

from textual.widgets import Input, TextArea

from crowdtui.tui.doc_actions import menu_actions
from crowdtui.tui.screens.choice import ChoiceScreen
from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.screens.editor import EditorScreen, run_editor
from crowdtui.tui.widgets.documents_view import DocumentsView
from qms import workflow as wf
from tests.tui.test_setup_views import crew_app, fill, started, told
from tests.tui.conftest import wait_for


async def on_board(pilot, app, doc_id: str) -> DocumentsView:
    """Show every document on the board and highlight ``doc_id``."""
    board = app.query_one(DocumentsView)
    if not app.scope_all:
        await pilot.press("a")
    await pilot.press("3")
    await wait_for(pilot, lambda: doc_id in [d.id for d in board.documents], what=f"{doc_id} on the board")
    board.query_one("#docs-table").move_cursor(row=[d.id for d in board.documents].index(doc_id))
    return board


async def menu(pilot, app) -> ChoiceScreen:
    await pilot.press("w")
    return await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen) and app.screen, what="the menu")


async def choose(pilot, app, action: str, values: dict[str, str] | None = None) -> None:
    screen = await menu(pilot, app)
    assert action in screen.ids, f"{action} not offered: {screen.ids}"
    screen.pick(action)
    await pilot.press("enter")
    if values is not None:
        await fill(pilot, app, values)


async def state_is(pilot, app, store, doc_id: str, state: str) -> None:
    board = app.query_one(DocumentsView)

    def shown():
        return any(d.id == doc_id and d.state == state for d in board.documents)
    await wait_for(pilot, shown, what=f"{doc_id} shown {state}")
    assert (await store.get_document(doc_id)).state == state


def offered(screen: ChoiceScreen, doc) -> None:
    """The menu holds the state machine's actions for the state, and nothing else."""
    allowed = set(wf.next_actions(doc.state, doc.executable)) | {"edit", "break-lock"}
    assert set(screen.ids) <= allowed, f"{doc.state}: {screen.ids} beyond {allowed}"
    assert screen.ids == menu_actions(doc)


async def test_create_edit_check_out_cancel_route_from_the_console(workspace, store):
    app = crew_app(workspace, "qa")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "qa")
        await pilot.press("a", "3", "N")
        await fill(pilot, app, {"type": "SOP", "title": "Backups"})
        await wait_for(pilot, lambda: told(app, "SOP-001 created"), what="created")
        doc = await store.get_document("SOP-001")
        assert (doc.state, doc.author, doc.version) == ("DRAFT", "operator", 1)
        await on_board(pilot, app, "SOP-001")
        # inline editor: check out, edit, check in a new version with a note
        await pilot.press("i")
        editor = await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen)
        assert (await store.get_document("SOP-001")).holder == "operator"  # checked out while editing
        editor.query_one(TextArea).text = "keep three copies\n"
        editor.query_one("#editor-note", Input).value = "first text"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: told(app, "SOP-001: checked in"), what="checked in")
        doc = await store.get_document("SOP-001")
        assert (doc.version, doc.content, doc.holder) == (2, "keep three copies\n", None)
        assert (await store.versions("SOP-001"))[-1].note == "first text"
        # an edit cancelled gives back the checkout it took, and writes nothing
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: told(app, "edit cancelled"), what="cancel told")
        doc = await store.get_document("SOP-001")
        assert (doc.version, doc.holder) == (2, None)
        # the menu in DRAFT: edit, check out, route for review — no approve, no release
        screen = await menu(pilot, app)
        offered(screen, doc)
        assert screen.ids == ["edit", "checkout", "route-review"]
        await pilot.press("escape")
        await choose(pilot, app, "checkout")
        await wait_for(pilot, lambda: app.query_one(DocumentsView).current.holder == "operator", what="held")
        doc = await store.get_document("SOP-001")
        screen = await menu(pilot, app)
        offered(screen, doc)
        assert screen.ids == ["checkin", "cancel", "route-review", "break-lock"]
        screen.pick("cancel")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one(DocumentsView).current.holder is None, what="released")
        await choose(pilot, app, "route-review", {"assignees": "qa"})
        await state_is(pilot, app, store, "SOP-001", "IN_REVIEW")
        screen = await menu(pilot, app)
        offered(screen, await store.get_document("SOP-001"))
        assert screen.ids == ["review"]
    assert [t.doc_id for t in await store.pending_tasks("qa")] == ["SOP-001"]
    kinds = [e.kind for e in await store.history("SOP-001")]
    for kind in ("doc.created", "doc.checkout", "doc.checkin", "doc.checkout_cancelled", "doc.routed"):
        assert kind in kinds


async def test_review_with_a_comment_approve_and_retire(workspace, store):
    app = crew_app(workspace, "alice", "qa")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice", "qa")
        a = await store.create_document("alice", "SOP", "Reviewed by the operator", "text\n")
        await store.route(a.id, "alice", "review", ["operator"])
        await on_board(pilot, app, a.id)
        await choose(pilot, app, "review", {"outcome": "request-updates", "comment": "say where"})
        await state_is(pilot, app, store, a.id, "DRAFT")  # updates requested: back to the author
        reviewed = [e for e in await store.history(a.id) if e.kind == "doc.reviewed"]
        assert [(e.actor, e.detail["outcome"], e.detail["comment"]) for e in reviewed] == [
            ("operator", "request-updates", "say where")]
        await store.route(a.id, "alice", "review", ["operator"])
        await state_is(pilot, app, store, a.id, "IN_REVIEW")
        await choose(pilot, app, "review", {"outcome": "recommend", "comment": "good now"})
        await state_is(pilot, app, store, a.id, "REVIEWED")
        screen = await menu(pilot, app)
        assert screen.ids == ["route-approval"]
        await pilot.press("escape")
        # another document routed to the operator for approval (qa reviewed it)
        b = await store.create_document("alice", "SOP", "Approved by the operator", "text\n")
        await store.route(b.id, "alice", "review", ["qa"])
        await store.review(b.id, "qa", "recommend", "fine")
        await store.route(b.id, "alice", "approval", ["operator"])
        await on_board(pilot, app, b.id)
        screen = await menu(pilot, app)
        assert screen.ids == ["approve", "reject"]
        screen.pick("approve")
        await pilot.press("enter")
        await fill(pilot, app, {"comment": "ship it"})
        await state_is(pilot, app, store, b.id, "EFFECTIVE")
        await choose(pilot, app, "retire", {})  # a confirmation
        await state_is(pilot, app, store, b.id, "RETIRED")
        await pilot.press("w")  # nothing is allowed from RETIRED: said, no menu
        await wait_for(pilot, lambda: told(app, "nothing (it is retired)"), what="nothing allowed told")
        assert not isinstance(app.screen, ChoiceScreen)


async def test_executable_reject_release_and_close(workspace, store):
    app = crew_app(workspace, "alice", "qa")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice", "qa")
        cr = await store.create_document("alice", "CR", "Move the backups", "plan\n")
        await store.route(cr.id, "alice", "review", ["qa"])
        await store.review(cr.id, "qa", "recommend", "ok")
        await store.route(cr.id, "alice", "approval", ["operator"])
        await on_board(pilot, app, cr.id)
        await choose(pilot, app, "reject", {"comment": "needs a rollback plan"})
        await state_is(pilot, app, store, cr.id, "IN_REVIEW")
        await store.review(cr.id, "qa", "recommend", "rollback added")
        await store.route(cr.id, "alice", "approval", ["operator"])
        await state_is(pilot, app, store, cr.id, "IN_APPROVAL")
        await choose(pilot, app, "approve", {"comment": ""})
        await state_is(pilot, app, store, cr.id, "PRE_APPROVED")
        screen = await menu(pilot, app)
        assert screen.ids == ["release"]
        screen.pick("release")
        await pilot.press("enter")
        await fill(pilot, app, {})
        await state_is(pilot, app, store, cr.id, "IN_EXECUTION")
        await store.route(cr.id, "alice", "review", ["qa"])
        await store.review(cr.id, "qa", "recommend", "done right")
        await store.route(cr.id, "alice", "approval", ["operator"])
        await state_is(pilot, app, store, cr.id, "POST_APPROVAL")
        await choose(pilot, app, "approve", {"comment": "verified"})
        await state_is(pilot, app, store, cr.id, "POST_APPROVED")
        await choose(pilot, app, "close", {})
        await state_is(pilot, app, store, cr.id, "CLOSED")
    rejected = [e for e in await store.history(cr.id) if e.kind == "doc.rejected"]
    assert [(e.actor, e.detail["comment"]) for e in rejected] == [("operator", "needs a rollback plan")]


async def test_break_a_lock_and_refusals_are_told(workspace, store):
    app = crew_app(workspace, "alice")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice")
        doc = await store.create_document("alice", "SOP", "Held", "v1\n")
        await store.checkout(doc.id, "alice")
        board = await on_board(pilot, app, doc.id)
        await wait_for(pilot, lambda: board.current.holder == "alice")
        # editing a document alice holds: the store refuses the checkout, the console says so
        await pilot.press("i")
        await wait_for(pilot, lambda: told(app, "is held by alice"), what="refusal told")
        assert not isinstance(app.screen, EditorScreen)
        screen = await menu(pilot, app)
        assert screen.ids == ["edit", "checkout", "route-review", "break-lock"]
        screen.pick("break-lock")
        await pilot.press("enter")
        await wait_for(pilot, lambda: board.current.holder is None, what="lock broken")
    assert "doc.lock_broken" in [e.kind for e in await store.history(doc.id)]


async def test_open_document_offers_the_same_actions(workspace, store):
    app = crew_app(workspace, "alice")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice")
        doc = await store.create_document("alice", "SOP", "Opened", "v1\n")
        await on_board(pilot, app, doc.id)
        app.push_screen(DocumentScreen(doc.id))
        opened = await wait_for(pilot, lambda: isinstance(app.screen, DocumentScreen) and app.screen)
        await wait_for(pilot, lambda: opened.doc is not None)
        await pilot.press("i")
        editor = await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen) and app.screen)
        editor.query_one(TextArea).text = "v2\n"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, DocumentScreen) and len(opened.versions) == 2,
                       what="the open document shows the new version")
    assert (await store.get_document(doc.id)).content == "v2\n"


async def test_editor_with_the_app_unsuspendable_falls_back_to_inline(workspace, store, monkeypatch):
    monkeypatch.setenv("EDITOR", f"{sys.executable} -c pass")
    monkeypatch.delenv("VISUAL", raising=False)
    app = crew_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        doc = await store.create_document("operator", "SOP", "Edited", "v1\n")
        await on_board(pilot, app, doc.id)
        await pilot.press("E")  # a headless console cannot hand the terminal over
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="inline editor")
        assert told(app, "editing inline")
        await pilot.press("escape")


def test_run_editor_runs_the_command_on_a_file(tmp_path):
    script = tmp_path / "ed.py"
    script.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().upper())\n")
    assert run_editor([sys.executable, str(script)], "one\ntwo\n", "SOP-001") == "ONE\nTWO\n"
    failing = tmp_path / "fail.py"
    failing.write_text("raise SystemExit(3)\n")
    assert run_editor([sys.executable, str(failing)], "x", "SOP-001") is None
