"""A tiny Textual app hosting one Terminal widget and one Input beside it."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Input

from crowdtui.tui.widgets.terminal import Terminal


class TerminalTestApp(App):
    CSS = "Input { height: 3; }"

    def __init__(self, session=None) -> None:
        super().__init__()
        self.session = session
        self.messages: list = []

    def compose(self) -> ComposeResult:
        yield Input(id="other")
        yield Terminal(self.session, label="shell", id="term")

    def on_mount(self) -> None:
        self.query_one(Terminal).focus()

    def on_terminal_focus_released(self, message: Terminal.FocusReleased) -> None:
        self.messages.append(message)

    def on_terminal_title_changed(self, message: Terminal.TitleChanged) -> None:
        self.messages.append(message)

    def on_terminal_closed(self, message: Terminal.Closed) -> None:
        self.messages.append(message)
