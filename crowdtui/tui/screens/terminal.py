"""An agent's terminal full screen inside the app. ``ctrl+]`` goes back; the agent keeps
running (this screen is one more viewer of the agent's shared PTY session)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from crowdtui.tui.text import inert


class TerminalScreen(Screen[None]):
    DEFAULT_CSS = """
    TerminalScreen #fullscreen-bar { height: 1; background: $accent; color: $text; padding: 0 1; }
    TerminalScreen #fullscreen-error { padding: 1 2; }
    """
    BINDINGS = [
        Binding("ctrl+right_square_bracket", "back", "back", priority=True),
    ]

    def __init__(self, agent: str, container_id: str,
                 open_terminal: Callable[[str], Awaitable[Any]]) -> None:
        """``open_terminal(container_id)``: a terminal widget on the agent's shared session."""
        super().__init__()
        self.agent = agent
        self.container_id = container_id
        self.open_terminal = open_terminal
        self.terminal = None

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((inert(self.agent), "bold"),
                                   " — full screen · ctrl+] back (the agent keeps running)"),
                     id="fullscreen-bar")

    async def on_mount(self) -> None:
        try:
            self.terminal = await self.open_terminal(self.container_id)
        except Exception as exc:
            await self.mount(Static(Text(inert(f"Cannot attach: {exc}")),
                                    id="fullscreen-error"))
            return
        await self.mount(self.terminal)
        self.terminal.focus()

    def action_back(self) -> None:
        self.dismiss(None)
