"""One document: its content, its versions, a diff between any two, and the workflow keys."""

from __future__ import annotations

import difflib
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Select, Static

from crowdtui.tui.doc_actions import DocActions
from crowdtui.tui.text import clock, inert, safe


def diff_text(old: str, new: str, old_name: str, new_name: str) -> Text:
    """A unified diff of two versions, coloured, every line inert."""
    out = Text()
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), old_name, new_name,
                                 lineterm="")
    any_line = False
    for line in lines:
        any_line = True
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        out.append(inert(line) + "\n", style)
    if not any_line:
        out.append("No differences.", "dim")
    return out


class DocumentScreen(Screen[None]):
    """Opened from the board. ``escape`` goes back."""

    DEFAULT_CSS = """
    DocumentScreen #doc-head { height: auto; background: $panel; padding: 0 1; }
    DocumentScreen #doc-versions { width: 34; }
    DocumentScreen #doc-versions DataTable { height: 1fr; }
    DocumentScreen #doc-diffbar { height: 3; }
    DocumentScreen #doc-diffbar Select { width: 1fr; }
    DocumentScreen #doc-body { height: 1fr; border: round $panel; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "back"),
        Binding("w", "doc('menu')", "actions"),
        Binding("E", "doc('edit')", "edit"),
        Binding("i", "doc('edit_inline')", "edit inline", show=False),
        Binding("A", "doc('approve')", "approve"),
        Binding("X", "doc('reject')", "reject"),
        Binding("V", "doc('review')", "review", show=False),
        Binding("O", "doc('route')", "route", show=False),
        Binding("L", "doc('break-lock')", "break lock", show=False),
    ]

    def __init__(self, doc_id: str) -> None:
        super().__init__()
        self.doc_id = doc_id
        self.doc: Any = None
        self.versions: list[Any] = []
        self.contents: dict[int, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="doc-head")
        with Horizontal():
            with Vertical(id="doc-versions"):
                yield DataTable(cursor_type="row", id="doc-versions-table")
            with Vertical():
                with Horizontal(id="doc-diffbar"):
                    yield Select([], prompt="diff: from", id="doc-diff-from")
                    yield Select([], prompt="to", id="doc-diff-to")
                with VerticalScroll(id="doc-body"):
                    yield Static(id="doc-text")
        yield Footer(show_command_palette=False)

    async def on_mount(self) -> None:
        t = self.query_one("#doc-versions-table", DataTable)
        t.add_column("v", key="v")
        t.add_column("author", key="author")
        t.add_column("when", key="when")
        t.add_column("note", key="note")
        await self.reload()

    async def reload(self) -> None:
        store = self.app.store
        self.doc = await store.get_document(self.doc_id)
        self.versions = await store.versions(self.doc_id)
        fmt = getattr(self.app, "time_format", clock)
        d = self.doc
        head = Text.assemble(
            safe(d.id, "bold"), " ", safe(d.title, "bold"), "\n",
            (f"{d.doc_type} · {d.state} · version {d.version} · by ", "dim"), safe(d.author),
        )
        if d.holder:
            head.append(" · checked out by ", "dim")
            head.append(inert(d.holder), "bold yellow")
        head.append("\nw every action allowed now  E edit  A approve  X reject  V review  O route  "
                    "L break lock  escape back", "dim")
        self.query_one("#doc-head", Static).update(head)
        t = self.query_one("#doc-versions-table", DataTable)
        t.clear()
        for v in self.versions:
            t.add_row(Text(str(v.number)), safe(v.author), Text(fmt(v.created_at)),
                      safe(v.note or ""), key=str(v.number))
        opts = [(f"v{v.number}", v.number) for v in self.versions]
        for sel in (self.query_one("#doc-diff-from", Select),
                    self.query_one("#doc-diff-to", Select)):
            sel.set_options(opts)
        self.contents = {d.version: d.content or ""}
        self._show_content(d.version)

    def _show_content(self, number: int) -> None:
        text = self.contents.get(number)
        body = self.query_one("#doc-text", Static)
        if text is None:
            body.update(Text("loading…", "dim"))
            return
        body.update(Text.assemble((f"version {number}\n\n", "dim"), safe(text, multiline=True)))

    async def _content(self, number: int) -> str:
        if number not in self.contents:
            doc = await self.app.store.get_document(self.doc_id, version=number)
            self.contents[number] = doc.content or ""
        return self.contents[number]

    async def select_diff(self, a: int, b: int) -> None:
        """Choose the two versions in the diff bar and show their diff."""
        self.query_one("#doc-diff-from", Select).value = a
        self.query_one("#doc-diff-to", Select).value = b
        await self.show_diff(a, b)

    async def show_diff(self, a: int, b: int) -> None:
        old, new = await self._content(a), await self._content(b)
        self.query_one("#doc-text", Static).update(
            diff_text(old, new, f"{self.doc_id} v{a}", f"{self.doc_id} v{b}"))

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is None or event.row_key.value is None:
            return
        number = int(event.row_key.value)
        await self._content(number)
        self._show_content(number)

    @on(Select.Changed)
    async def _diff_changed(self, event: Select.Changed) -> None:
        event.stop()
        a = self.query_one("#doc-diff-from", Select).value
        b = self.query_one("#doc-diff-to", Select).value
        if isinstance(a, int) and isinstance(b, int):
            await self.show_diff(a, b)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event) -> None:
        """A failed action is told where every worker's failure is (worker states do not bubble)."""
        handler = getattr(self.app, "on_worker_state_changed", None)
        if handler is not None:
            handler(event)

    def action_doc(self, action: str) -> None:
        self._run_action(action)

    @work(exclusive=True, group="doc-action", exit_on_error=False)
    async def _run_action(self, action: str) -> None:
        ok = await DocActions(self.app).run(action, self.doc_id)
        if ok:
            await self.reload()
