"""Search across messages and documents (``ctrl+f``): type, enter; the highlighted hit's whole
text shows below; enter on a document opens it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.text import clock, inert, safe


class SearchScreen(Screen[None]):
    DEFAULT_CSS = """
    SearchScreen #search-input { height: 3; }
    SearchScreen #search-status { height: 1; background: $panel; padding: 0 1; }
    SearchScreen DataTable { height: 1fr; }
    SearchScreen #search-body { height: 1fr; border-top: solid $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "back"), Binding("slash", "focus_query", "new search", key_display="/")]

    def __init__(self, query: str = "") -> None:
        super().__init__()
        self.query_text = query
        self.hits: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Input(self.query_text, placeholder="search messages and documents, then enter",
                    id="search-input")
        yield Static("", id="search-status")
        yield DataTable(cursor_type="row", id="search-results")
        with VerticalScroll(id="search-body"):
            yield Static(id="search-text")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        t.add_column("what", key="kind", width=8)
        t.add_column("ref", key="ref", width=8)
        t.add_column("who / title", key="title", width=24)
        t.add_column("when", key="at", width=8)
        t.add_column("text", key="snippet")
        self.query_one(Input).focus()
        if self.query_text:
            self.search(self.query_text)

    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.search(event.value)

    @work(exclusive=True, exit_on_error=False)
    async def search(self, query: str) -> None:
        from qms.search import search

        status = self.query_one("#search-status", Static)
        try:
            hits = await search(self.app.store, query)
        except Exception as exc:  # a bad query, a busy store: said, not raised
            status.update(safe(str(exc), "bold red"))
            return
        self.show(query, hits)

    def show(self, query: str, hits: list[Any]) -> None:
        self.query_text, self.hits = query, hits
        fmt = getattr(self.app, "time_format", clock)
        t = self.query_one(DataTable)
        t.clear()
        for i, h in enumerate(hits):
            t.add_row(Text("msg" if h.kind == "message" else "doc",
                           "cyan" if h.kind == "message" else "magenta"),
                      safe(h.ref, "bold"), safe(h.title), Text(fmt(h.at)), safe(h.snippet), key=str(i))
        n = len(hits)
        self.query_one("#search-status", Static).update(Text.assemble(
            f"{n} hit{'s' if n != 1 else ''} for ", safe(repr(inert(query))),
            ("  · enter on a document opens it · escape back", "dim")))
        if hits:
            t.focus()

    @on(DataTable.RowHighlighted, "#search-results")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is not None and event.row_key.value is not None:
            self.show_text(self.hits[int(str(event.row_key.value))])

    @work(exclusive=True, group="search-text", exit_on_error=False)
    async def show_text(self, hit: Any) -> None:
        """The hit's whole text: the message's body, or the document's latest version."""
        store = self.app.store
        try:
            if hit.kind == "message":
                m = await store.get_message(int(hit.ref))
                head, text = f"{m.sender} -> {m.recipient}\n\n", m.body
            else:
                d = await store.get_document(hit.ref)
                head, text = f"{d.id} v{d.version} {d.title} · {d.state} (enter opens it)\n\n", d.content
        except Exception as exc:  # gone meanwhile, a busy store: said here
            self.query_one("#search-text", Static).update(safe(str(exc), "red"))
            return
        self.query_one("#search-text", Static).update(
            Text.assemble(safe(head, "dim", multiline=True), safe(text, multiline=True)))

    @on(DataTable.RowSelected, "#search-results")
    def _open(self, event: DataTable.RowSelected) -> None:
        event.stop()
        hit = self.hits[int(str(event.row_key.value))]
        if hit.kind == "document":
            self.app.push_screen(DocumentScreen(hit.ref))

    def action_focus_query(self) -> None:
        self.query_one(Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)
