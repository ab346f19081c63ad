"""Where an agent's live terminal sits: the terminal widget when the agent runs, a
short explanation when it does not. Attaching adds a viewer to the agent's shared PTY
session; detaching removes only that viewer, never stops the agent."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widget import Widget
from textual.widgets import Static

from crowdtui.tui.text import inert, safe


def terminal_widget_class() -> type[Widget] | None:
    """The terminal widget's class, if its module has landed (it is another area's)."""
    try:
        from crowdtui.tui.widgets import terminal as mod
    except Exception:
        return None
    for name in ("Terminal", "TerminalView", "TerminalWidget", "PtyTerminal"):
        cls = getattr(mod, name, None)
        if isinstance(cls, type) and issubclass(cls, Widget):
            return cls
    for value in vars(mod).values():
        if (isinstance(value, type) and issubclass(value, Widget) and value is not Widget
                and value.__module__ == mod.__name__):
            return value
    return None


def typed_at() -> float:
    """When the operator last typed into a terminal (monotonic; -inf: never)."""
    return getattr(terminal_widget_class(), "typed_at", float("-inf"))


def make_terminal(session: Any, **kwargs) -> Widget:
    """A terminal widget attached to ``session`` (a PtySession or an exec session)."""
    cls = terminal_widget_class()
    if cls is None:
        raise RuntimeError("the terminal widget is not installed; update crowdtui")
    try:
        return cls(session, **kwargs)
    except TypeError:
        w = cls(**kwargs)
        attach = getattr(w, "attach", None)
        if attach is not None:
            attach(session)
        return w


class TerminalPane(Container):
    """Shows one agent's terminal, or why there is none."""

    DEFAULT_CSS = """
    TerminalPane { height: 1fr; }
    TerminalPane > #terminal-placeholder { padding: 1 2; color: $text-muted; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.agent: str | None = None
        self.container_id: str | None = None
        self.terminal: Widget | None = None
        self.session: Any = None  # the shared PTY session shown
        self.conversation: Widget | None = None  # mode: acp — the structured conversation shown instead
        self._attaching = asyncio.Lock()

    @property
    def stale(self) -> bool:
        """The session shown has ended (its container stopped, or the engine went away): a
        container running again needs a fresh attach, even with the same id."""
        if self.conversation is not None:
            return not getattr(getattr(self.conversation, "agent", None), "alive", False)
        return self.session is not None and bool(getattr(self.session, "closed", False))

    def compose(self) -> ComposeResult:
        yield Static(Text("Select an agent.", "dim"), id="terminal-placeholder")

    def explain(self, agent: str | None, why: str) -> None:
        """Detach (if attached) and show ``why`` instead of a terminal."""
        self._detach()
        self.agent = agent
        self.container_id = None
        ph = self.query_one("#terminal-placeholder", Static)
        ph.display = True
        ph.update(Text.assemble(safe(agent or "", "bold"), "\n\n" if agent else "",
                                (inert(why, multiline=True), "")))

    async def attach(self, agent: str, container_id: str, get_session: Callable[[str], Any],
                     *, focus: bool = False) -> None:
        """Show ``agent``'s terminal (``get_session(container_id)`` gives the shared session).

        Attaches run one at a time, and a mount once begun is never cut short: a widget
        cancelled halfway through its mount stays in the DOM without handling a message, and
        the whole console waits on it."""
        async with self._attaching:
            if self.agent == agent and self.container_id == container_id and self.terminal and not self.stale:
                if focus:
                    self.terminal.focus()
                return
            removing = self._detach()
            if removing is not None:
                await removing
            self.agent = agent
            self.container_id = container_id
            target = (agent, container_id)
            try:
                session = await get_session(container_id)
                widget = make_terminal(session, id="agent-terminal")
            except Exception as exc:
                if (self.agent, self.container_id) == target:
                    self.explain(agent, f"Cannot attach to the terminal: {exc}")
                return
            if (self.agent, self.container_id) != target:  # selection moved on while attaching
                return
            self.query_one("#terminal-placeholder", Static).display = False
            await asyncio.shield(self.mount(widget))
            if (self.agent, self.container_id) != target:  # explained away while it mounted
                await widget.remove()
                return
            self.session = session
            self.terminal = widget
            if focus:
                widget.focus()

    async def show_conversation(self, agent: str, container_id: str, acp_agent: Any, *, focus: bool = False) -> None:
        """Show ``agent``'s structured conversation (mode: acp) instead of its terminal."""
        from crowdtui.tui.widgets.conversation_view import ConversationView

        async with self._attaching:
            if (self.agent == agent and self.container_id == container_id and self.conversation is not None
                    and getattr(self.conversation, "agent", None) is acp_agent):
                return
            removing = self._detach()
            if removing is not None:
                await removing
            self.agent, self.container_id = agent, container_id
            widget = ConversationView(acp_agent, id="agent-conversation")
            self.query_one("#terminal-placeholder", Static).display = False
            await asyncio.shield(self.mount(widget))
            self.conversation = widget
            if focus:
                widget.query_one("#acp-prompt").focus()

    def _detach(self) -> Any:
        """Forget the terminal (or conversation) shown; returns its removal (to await) if there was one."""
        self.session = None
        if self.conversation is not None:
            c, self.conversation = self.conversation, None
            if self.terminal is None:
                return c.remove()
            c.remove()
        if self.terminal is not None:
            t, self.terminal = self.terminal, None
            return t.remove()
        return None
