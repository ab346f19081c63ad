"""The document board: every document grouped by state, the operator's tasks marked. The
operator's actions on a document are ``crowdtui.tui.doc_actions``."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from crowdtui.tui.text import safe
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
            " · enter open  w actions  N new  E edit  A approve  X reject",
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
