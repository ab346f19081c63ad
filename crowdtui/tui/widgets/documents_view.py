"""The document board: every document grouped by state, the operator's tasks marked; and
the operator's actions on a document (approve, reject, review, route, break the lock)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from crowdtui.tui.screens.form import Field, FormScreen
from crowdtui.tui.text import inert, safe
from qms.names import OPERATOR

STATE_ORDER = [
    "DRAFT", "IN_REVIEW", "REVIEWED", "IN_APPROVAL", "PRE_APPROVED", "IN_EXECUTION",
    "POST_REVIEW", "POST_REVIEWED", "POST_APPROVAL", "POST_APPROVED", "EFFECTIVE",
    "CLOSED", "RETIRED",
]
STATE_STYLE = {
    "DRAFT": "dim", "IN_REVIEW": "yellow", "REVIEWED": "cyan", "IN_APPROVAL": "bold yellow",
    "EFFECTIVE": "green", "CLOSED": "dim green", "RETIRED": "dim",
}


def state_rank(state: str) -> int:
    try:
        return STATE_ORDER.index(state)
    except ValueError:
        return len(STATE_ORDER)


class DocumentsView(Vertical):
    """A board by state. Enter opens a document; tasks for the operator show a ▶."""

    DEFAULT_CSS = """
    DocumentsView { height: 1fr; }
    DocumentsView > #docs-title { height: 1; background: $panel; padding: 0 1; }
    DocumentsView > DataTable { height: 1fr; overflow-x: hidden; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.documents: list[Any] = []
        self.tasks: dict[str, str] = {}  # doc id -> task kind for the operator
        self.agent: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="docs-title")
        yield DataTable(cursor_type="row", id="docs-table")

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        # fixed widths: the board does not jump about as documents come and go
        t.add_column("", key="task", width=1)
        t.add_column("state", key="state", width=13)
        t.add_column("id", key="id", width=8)
        t.add_column("v", key="version", width=3)
        t.add_column("title", key="title", width=30)
        t.add_column("author", key="author", width=12)
        t.add_column("held by", key="holder", width=12)
        self._title()

    def _title(self) -> None:
        n = len(self.tasks)
        scope = "all" if self.agent is None else self.agent
        self.query_one("#docs-title", Static).update(Text.assemble(
            ("Documents ", "bold"), safe(scope), f" · {len(self.documents)} shown · ",
            (f"{n} task(s) for you", "bold yellow" if n else "dim"),
            " · enter open  A approve  X reject  V review  O route  L break lock",
        ))

    @property
    def current(self) -> Any | None:
        t = self.query_one(DataTable)
        if not self.documents or not (0 <= t.cursor_row < len(self.documents)):
            return None
        return self.documents[t.cursor_row]

    def show(self, documents: list[Any], tasks: dict[str, str], agent: str | None) -> None:
        keep = getattr(self.current, "id", None)
        if agent is not None:
            documents = [d for d in documents
                         if agent in (d.author, d.holder) or d.id in tasks and agent == OPERATOR]
        self.documents = sorted(
            documents, key=lambda d: (0 if d.id in tasks else 1, state_rank(d.state), d.id))
        self.tasks = tasks
        self.agent = agent
        t = self.query_one(DataTable)
        t.clear()
        for d in self.documents:
            t.add_row(
                Text("▶", "bold yellow") if d.id in tasks else Text(""),
                Text(d.state, STATE_STYLE.get(d.state, "")),
                safe(d.id, "bold"),
                Text(str(d.version)),
                safe(d.title),
                safe(d.author or ""),
                safe(d.holder or ""),
                key=d.id,
            )
        ids = [d.id for d in self.documents]
        if keep in ids:
            t.move_cursor(row=ids.index(keep))
        self._title()

    # ---- the operator's actions on a document (the console's keys A X V O L). Each asks
    # for what it needs in a form (so it runs in a worker), writes as the operator and
    # says how it went; True when done.
    async def approve(self, doc_id: str) -> bool:
        vals = await self._ask(f"Approve {doc_id}", [Field("comment", "comment (optional)")])
        return vals is not None and await self._write(
            doc_id, "approve", lambda store: store.approve(doc_id, OPERATOR, vals.get("comment") or None))

    async def reject(self, doc_id: str) -> bool:
        vals = await self._ask(f"Reject {doc_id}", [Field("comment", "why (required)", required=True)])
        return vals is not None and await self._write(
            doc_id, "reject", lambda store: store.reject(doc_id, OPERATOR, vals["comment"]))

    async def review(self, doc_id: str) -> bool:
        vals = await self._ask(f"Review {doc_id}", [
            Field("outcome", "outcome", ["recommend", "request-updates"]),
            Field("comment", "comment", required=True)])
        return vals is not None and await self._write(
            doc_id, "review", lambda store: store.review(doc_id, OPERATOR, vals["outcome"], vals["comment"]))

    async def route(self, doc_id: str) -> bool:
        vals = await self._ask(f"Route {doc_id}", [
            Field("kind", "for", ["review", "approval"]),
            Field("assignees", "to (names, comma separated)", required=True)])
        if vals is None:
            return False
        names = [n.strip() for n in vals["assignees"].split(",") if n.strip()]
        return await self._write(doc_id, "route", lambda store: store.route(doc_id, OPERATOR, vals["kind"], names))

    async def break_lock(self, doc_id: str) -> bool:
        return await self._write(doc_id, "break lock", lambda store: store.break_lock(doc_id, OPERATOR))

    async def _ask(self, title: str, fields: list[Field]) -> dict[str, str] | None:
        """The form's values, or None when the operator cancelled."""
        return await self.app.push_screen_wait(FormScreen(title, fields)) or None

    async def _write(self, doc_id: str, what: str, write: Callable[[Any], Awaitable[Any]]) -> bool:
        app: Any = self.app
        try:
            await write(app.store)
        except Exception as exc:  # the store's refusal, told to the operator as it is
            app.store_wrote(exc)
            app.notify(inert(f"{doc_id}: {exc}"), severity="error", markup=False, timeout=8)
            return False
        app.store_wrote(None)
        app.notify(inert(f"{doc_id}: {what} done"), markup=False)
        app.refresh_documents()
        return True
