"""The inbox of one agent (or of everyone): messages in a table, the selected body below;
and the operator's actions on the highlighted message (reply, mark read)."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from crowdtui.tui.screens.compose import ComposeScreen
from crowdtui.tui.text import clock, first_line, inert, safe
from qms.names import OPERATOR

PRIORITY_STYLE = {"high": "bold red", "normal": "", "low": "dim"}


class InboxView(Vertical):
    """Messages for ``owner`` (None: every agent's inbox merged)."""

    DEFAULT_CSS = """
    InboxView { height: 1fr; }
    InboxView > #inbox-title { height: 1; background: $panel; padding: 0 1; }
    InboxView > DataTable { height: 1fr; min-height: 3; overflow-x: hidden; }
    InboxView > #inbox-body { height: 2fr; border-top: solid $panel; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.owner: str | None = None
        self.messages: list[Any] = []
        self.time_format = clock

    def compose(self) -> ComposeResult:
        yield Static(id="inbox-title")
        yield DataTable(cursor_type="row", id="inbox-table")
        with VerticalScroll(id="inbox-body"):
            yield Static(id="inbox-text")

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        # fixed widths: the table does not jump about as messages come and go
        t.add_column("", key="new", width=1)
        t.add_column("time", key="time", width=8)
        t.add_column("from", key="from", width=12)
        t.add_column("to", key="to", width=12)
        t.add_column("pri", key="pri", width=6)
        t.add_column("message", key="body", width=120)
        self._title()

    def _title(self) -> None:
        who = "every agent" if self.owner is None else self.owner
        unread = sum(1 for m in self.messages if getattr(m, "read_at", None) is None)
        title = Text.assemble(("Inbox ", "bold"), safe(who), f" · {len(self.messages)} messages, "
                              f"{unread} unread · c write R reply b broadcast m read")
        self.query_one("#inbox-title", Static).update(title)

    @property
    def current(self) -> Any | None:
        t = self.query_one(DataTable)
        if not self.messages or not (0 <= t.cursor_row < len(self.messages)):
            return None
        return self.messages[t.cursor_row]

    def show(self, owner: str | None, messages: list[Any]) -> None:
        keep = getattr(self.current, "id", None)
        same_owner = owner == self.owner
        self.owner = owner
        self.messages = list(messages)
        t = self.query_one(DataTable)
        t.clear()
        for m in self.messages:
            t.add_row(
                Text("●" if m.read_at is None else "", "bold yellow"),
                Text(self.time_format(m.created_at)),
                safe(m.sender),
                safe(m.recipient),
                Text(m.priority, PRIORITY_STYLE.get(m.priority, "")),
                safe(first_line(m.body, 120), "bold" if m.read_at is None else ""),
                key=str(m.id),
            )
        ids = [m.id for m in self.messages]
        if same_owner and keep in ids:
            t.move_cursor(row=ids.index(keep))
        self._title()
        self._show_body()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_body()

    def _show_body(self) -> None:
        m = self.current
        body = self.query_one("#inbox-text", Static)
        if m is None:
            body.update(Text("No messages.", "dim"))
            return
        head = Text.assemble(
            ("From ", "dim"), safe(m.sender, "bold"), (" to ", "dim"), safe(m.recipient, "bold"),
            (f" · {m.priority} · {self.time_format(m.created_at)}", "dim"),
        )
        if getattr(m, "thread", None):
            head.append(f" · thread {m.thread}", "dim")
        body.update(Text.assemble(head, "\n\n", safe(m.body, multiline=True)))

    # ---- the operator's actions on the highlighted message (the console's keys R and m)
    def reply(self, send: Callable[[Any], Any], done: Callable[[Any], None]) -> None:
        """Open a reply to the highlighted message; ``send`` sends the draft, ``done`` follows."""
        m = self.current
        if m is None:
            self.app.notify("no message to reply to: open the Inbox (2) and pick one",
                            severity="warning", markup=False)
            return
        to = m.sender if m.sender != OPERATOR else m.recipient
        quote = "".join(f"> {line}\n" for line in inert(m.body, multiline=True).splitlines()[:5])
        self.app.push_screen(ComposeScreen(to=to, thread=m.thread or str(m.id), quote=quote + "\n",
                                           send=send, title=f"Reply to {inert(to)}"), done)

    async def mark_read(self) -> None:
        """Mark the highlighted message read (only the operator's own)."""
        app: Any = self.app
        m = self.current
        if m is None or m.recipient != OPERATOR:
            app.notify("only your own messages can be marked read", severity="warning",
                       markup=False)
            return
        await app.store.mark_read(OPERATOR, [m.id])
        app.refresh_inbox()
