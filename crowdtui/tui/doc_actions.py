"""The operator's actions on documents, from the board (3) or an open document.

Which transitions a document offers comes from the state machine (``qms.workflow``):
the menu (``w``) lists every action allowed from the current state and only those.
Each action asks for what it needs (a form, the editor), writes as the operator
through the store and says how it went; refusals are the store's, told as they are.
Actions run in workers (forms are awaited)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from textual.app import SuspendNotSupported

from crowdtui.tui.screens.choice import ChoiceScreen
from crowdtui.tui.screens.editor import Edited, EditorScreen, editor_command, run_editor
from crowdtui.tui.screens.form import Field, FormScreen
from crowdtui.tui.text import inert
from qms import workflow as wf
from qms.names import OPERATOR

#: how each action reads in the menu
LABELS = {
    "create": "new document",
    "edit_inline": "edit inline: check out, edit, check in a new version",
    "edit": "edit: check out, edit, check in a new version",
    "checkout": "check out (take the lock)",
    "checkin": "edit and check in a new version",
    "cancel": "cancel the checkout (no new version)",
    "route-review": "route for review",
    "route-approval": "route for approval",
    "review": "review: recommend or request updates, with a comment",
    "approve": "approve",
    "reject": "reject, with a comment (back to review)",
    "release": "release for execution",
    "close": "close",
    "retire": "retire",
    "break-lock": "break the lock",
    "route": "route for review or approval (as the state allows)",
}


def menu_actions(doc: Any) -> list[str]:
    """The actions to offer on ``doc``: the state machine's (``qms.workflow.next_actions``),
    the editing steps narrowed to who holds the lock, and break-lock while it is held."""
    out: list[str] = []
    mine = doc.holder == OPERATOR and doc.is_held()
    for action in wf.next_actions(doc.state, doc.executable):
        if action == "checkout" and not mine:
            out += ["edit", "checkout"]
        elif action in ("checkin", "cancel") and not mine:
            continue
        elif action != "checkout":
            out.append(action)
    if doc.holder is not None:
        out.append("break-lock")
    return out


class DocActions:
    """The actions, bound to the console ``app`` (its store, forms and notices)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    @property
    def store(self) -> Any:
        return self.app.store

    async def run(self, action: str, doc_id: str | None) -> bool:
        """Do ``action`` (a key of LABELS, ``menu`` or ``create``) on ``doc_id``; True when done."""
        if action == "create":
            return await self.create()
        if doc_id is None:
            self.app.notify("no document selected: open Documents (3) and pick one",
                            severity="warning", markup=False)
            return False
        act = getattr(self, action.replace("-", "_"), None)
        if act is None or action not in {*LABELS, "menu", "route"}:
            raise ValueError(f"unknown document action {action!r}")
        return await act(doc_id)

    async def menu(self, doc_id: str) -> bool:
        doc = await self.store.get_document(doc_id)
        actions = menu_actions(doc)
        if not actions:
            self.app.notify(inert(f"{doc_id} is {doc.state}: {wf.ALLOWED.get(doc.state, 'nothing')}"),
                            markup=False)
            return False
        picked = await self.app.push_screen_wait(ChoiceScreen(
            f"{doc_id} · {doc.state} — what next?", [(a, LABELS[a]) for a in actions]))
        return picked is not None and await self.run(picked, doc_id)

    # ---- creating and editing
    async def create(self) -> bool:
        types = [t["code"] for t in await self.store.doc_types()]
        vals = await self._ask("New document", [Field("type", "type", types),
                                                Field("title", "title", required=True)])
        if vals is None:
            return False
        made: list[Any] = []

        async def write(store: Any) -> None:
            made.append(await store.create_document(OPERATOR, vals["type"], vals["title"].strip()))
        ok = await self._write("new document", "created", write)
        if ok:
            self.app.notify(inert(f"{made[0].id} created: edit it with E (or i inline)"), markup=False)
        return ok

    async def checkout(self, doc_id: str) -> bool:
        return await self._write(doc_id, "checked out", lambda s: s.checkout(doc_id, OPERATOR))

    async def cancel(self, doc_id: str) -> bool:
        return await self._write(doc_id, "checkout cancelled", lambda s: s.cancel_checkout(doc_id, OPERATOR))

    async def edit(self, doc_id: str, *, inline: bool = False) -> bool:
        """Check out (unless the operator holds it), edit, check in a new version. A cancelled
        edit gives back a checkout it took."""
        doc = await self.store.get_document(doc_id)
        took = not (doc.holder == OPERATOR and doc.is_held())
        if took and not await self.checkout(doc_id):
            return False
        edited = await self._edit(doc, inline=inline)
        if edited is None:
            if took:
                await self.cancel(doc_id)
            self.app.notify(inert(f"{doc_id}: edit cancelled, nothing checked in"), markup=False)
            return False
        return await self._write(doc_id, "checked in", lambda s: s.checkin(
            doc_id, OPERATOR, edited.content, note=edited.note))

    checkin = edit

    async def edit_inline(self, doc_id: str) -> bool:
        return await self.edit(doc_id, inline=True)

    async def _edit(self, doc: Any, *, inline: bool) -> Edited | None:
        title = f"{doc.id} v{doc.version} {doc.title}"
        command = None if inline else editor_command()
        if command is not None:
            try:
                with self.app.suspend():
                    text = run_editor(command, doc.content or "", doc.id)
            except SuspendNotSupported:
                self.app.notify("this console cannot hand the terminal to $EDITOR: editing inline",
                                markup=False)
            else:
                if text is None:
                    return None
                vals = await self._ask(f"Check in {doc.id}", [Field("note", "note (optional)")])
                return None if vals is None else Edited(text, vals["note"].strip() or None)
        return await self.app.push_screen_wait(EditorScreen(title, doc.content or ""))

    # ---- the workflow
    async def route_review(self, doc_id: str) -> bool:
        return await self._route(doc_id, "review")

    async def route_approval(self, doc_id: str) -> bool:
        return await self._route(doc_id, "approval")

    async def route(self, doc_id: str) -> bool:
        """Route for what the state allows (review from DRAFT/IN_EXECUTION, else approval)."""
        doc = await self.store.get_document(doc_id)
        return await self._route(doc_id, "review" if doc.state in wf.ROUTE_REVIEW else "approval")

    async def _route(self, doc_id: str, kind: str) -> bool:
        vals = await self._ask(f"Route {doc_id} for {kind}",
                               [Field("assignees", "to (names, comma separated)", required=True)])
        if vals is None:
            return False
        names = [n.strip() for n in vals["assignees"].split(",") if n.strip()]
        return await self._write(doc_id, f"routed for {kind}", lambda s: s.route(doc_id, OPERATOR, kind, names))

    async def review(self, doc_id: str) -> bool:
        vals = await self._ask(f"Review {doc_id}", [
            Field("outcome", "outcome", ["recommend", "request-updates"]),
            Field("comment", "comment", required=True)])
        return vals is not None and await self._write(
            doc_id, "reviewed", lambda s: s.review(doc_id, OPERATOR, vals["outcome"], vals["comment"]))

    async def approve(self, doc_id: str) -> bool:
        vals = await self._ask(f"Approve {doc_id}", [Field("comment", "comment (optional)")])
        return vals is not None and await self._write(
            doc_id, "approved", lambda s: s.approve(doc_id, OPERATOR, vals.get("comment") or None))

    async def reject(self, doc_id: str) -> bool:
        vals = await self._ask(f"Reject {doc_id}", [Field("comment", "why (required)", required=True)])
        return vals is not None and await self._write(
            doc_id, "rejected", lambda s: s.reject(doc_id, OPERATOR, vals["comment"]))

    async def release(self, doc_id: str) -> bool:
        return await self._confirmed(doc_id, "release for execution", "released",
                                     lambda s: s.release(doc_id, OPERATOR))

    async def close(self, doc_id: str) -> bool:
        return await self._confirmed(doc_id, "close", "closed", lambda s: s.close_document(doc_id, OPERATOR))

    async def retire(self, doc_id: str) -> bool:
        return await self._confirmed(doc_id, "retire", "retired", lambda s: s.retire(doc_id, OPERATOR))

    async def break_lock(self, doc_id: str) -> bool:
        return await self._write(doc_id, "lock broken", lambda s: s.break_lock(doc_id, OPERATOR))

    # ---- plumbing
    async def _confirmed(self, doc_id: str, verb: str, done: str,
                         write: Callable[[Any], Awaitable[Any]]) -> bool:
        if await self._ask(f"{verb.capitalize()} {doc_id}? ctrl+s confirms, escape cancels", []) is None:
            return False
        return await self._write(doc_id, done, write)

    async def _ask(self, title: str, fields: list[Field]) -> dict[str, str] | None:
        """The form's values, or None when the operator cancelled."""
        vals = await self.app.push_screen_wait(FormScreen(title, fields))
        return vals if vals is not None else None

    async def _write(self, doc_id: str, done: str, write: Callable[[Any], Awaitable[Any]]) -> bool:
        app = self.app
        try:
            await write(app.store)
        except Exception as exc:  # the store's refusal, told to the operator as it is
            app.store_wrote(exc)
            app.notify(inert(f"{doc_id}: {exc}"), severity="error", markup=False, timeout=8)
            return False
        app.store_wrote(None)
        app.notify(inert(f"{doc_id}: {done}"), markup=False)
        app.refresh_documents()
        return True


#: the console's keys for document actions (on the board and in an open document)
DOC_KEYS = [("w", "menu"), ("N", "create"), ("E", "edit"), ("i", "edit_inline"), ("V", "review"),
            ("O", "route"), ("L", "break-lock")]
