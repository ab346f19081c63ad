"""Compose a message: to one agent, to a selection (broadcast), with a priority."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, SelectionList, Static, TextArea

from crowdtui.tui.text import inert

PRIORITIES = ("normal", "high", "low")


@dataclass
class Draft:
    to: list[str]
    body: str
    priority: str = "normal"
    thread: str | None = None


class ComposeScreen(ModalScreen[Draft | None]):
    """Returns a ``Draft`` on send, ``None`` on cancel."""

    DEFAULT_CSS = """
    ComposeScreen { align: center middle; }
    ComposeScreen > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 95%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    ComposeScreen Horizontal { height: auto; }
    ComposeScreen #compose-to { width: 1fr; }
    ComposeScreen Select { width: 16; }
    ComposeScreen SelectionList { height: 8; }
    ComposeScreen TextArea { height: 8; min-height: 3; }
    ComposeScreen #compose-error { color: $error; height: auto; }
    ComposeScreen #compose-buttons { height: 3; align-horizontal: right; }
    """
    BINDINGS = [
        Binding("ctrl+s", "send", "send", priority=True),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, *, to: str = "", choices: list[str] | None = None,
                 selected: list[str] | None = None, thread: str | None = None,
                 quote: str = "", title: str = "New message", send=None) -> None:
        super().__init__()
        self.send = send  # async (Draft) -> None; raises with a one-line reason
        self.to = to
        self.choices = choices
        self.selected = set(selected or [])
        self.thread = thread
        self.quote = quote
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(inert(self.title_text), markup=False)
            with Horizontal():
                if self.choices is None:
                    yield Input(self.to, placeholder="to: agent, several with commas, or *",
                                id="compose-to")
                yield Select([(p, p) for p in PRIORITIES], value="normal", allow_blank=False,
                             id="compose-priority")
            if self.choices is not None:
                yield SelectionList[str](
                    *[(inert(n), n, n in self.selected) for n in self.choices],
                    id="compose-choices")
            yield TextArea(self.quote, id="compose-body")
            yield Static("", id="compose-error")
            with Horizontal(id="compose-buttons"):
                yield Button("Send (ctrl+s)", variant="primary", id="compose-send")
                yield Button("Cancel (esc)", id="compose-cancel")

    def on_mount(self) -> None:
        if self.choices is None and not self.to:
            self.query_one("#compose-to", Input).focus()
        else:
            self.query_one(TextArea).focus()

    async def action_send(self) -> None:
        if self.choices is None:
            raw = self.query_one("#compose-to", Input).value
            to = [t.strip() for t in raw.split(",") if t.strip()]
        else:
            to = list(self.query_one(SelectionList).selected)
        body = self.query_one(TextArea).text
        error = ""
        if not to:
            error = "Say who gets it: an agent name, several with commas, or * for everyone."
        elif not body.strip():
            error = "The message is empty; write something or press escape to cancel."
        if error:
            self.query_one("#compose-error", Static).update(error)
            return
        priority = str(self.query_one("#compose-priority", Select).value)
        draft = Draft(to=to, body=body, priority=priority, thread=self.thread)
        if self.send is not None:
            try:
                await self.send(draft)
            except Exception as exc:  # the store's errors say what to do; keep the draft
                self.show_error(f"Not sent: {exc}")
                return
        self.dismiss(draft)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#compose-send")
    async def _send(self) -> None:
        await self.action_send()

    @on(Button.Pressed, "#compose-cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def show_error(self, text: str) -> None:
        self.query_one("#compose-error", Static).update(inert(text))
