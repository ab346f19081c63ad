"""An agent's structured conversation (``mode: acp``): messages, thoughts, the plan, tool calls
with their status and diffs, and a prompt line.

The view follows a :class:`crowdtui.hub.acp.conversation.Conversation` (the agent's
``AcpAgent.conversation``): each entry added or changed is redrawn in place, at most once per
refresh. Enter in the prompt line sends the text as one turn (``AcpAgent.start_turn``: the agent's own
task, so a view replaced meanwhile does not end it); while a turn runs the status line says
so and Escape asks the agent to cancel it.
Everything the agent sent is made inert before it is shown.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from crowdtui.tui.text import safe

STATUS_MARK = {"pending": "…", "in_progress": "▶", "completed": "✓", "failed": "✗"}
MAX_DIFF_LINES = 60
MAX_SHOWN = 4000  # characters of one message shown


def render_entry(entry: Any, agent: str) -> Text:
    """One conversation entry as lines of styled, inert text."""
    kind = type(entry).__name__
    if kind == "Message":
        text = entry.text if len(entry.text) <= MAX_SHOWN else "…" + entry.text[-MAX_SHOWN:]
        if entry.role == "user":
            return Text.assemble(("you › ", "bold cyan"), safe(text, multiline=True))
        if entry.role == "thought":
            return Text.assemble(("thinking › ", "dim italic"), safe(text, "dim italic", multiline=True))
        return Text.assemble((f"{agent} › ", "bold green"), safe(text, multiline=True))
    if kind == "Plan":
        out = Text("plan\n", "bold")
        for item in entry.entries:
            mark = {"completed": "[x]", "in_progress": "[>]"}.get(item.get("status", ""), "[ ]")
            out.append_text(Text.assemble(f"  {mark} ", safe(item.get("content", "")), "\n"))
        out.rstrip()
        return out
    if kind == "ToolCall":
        style = {"completed": "green", "failed": "red"}.get(entry.status, "yellow")
        out = Text.assemble((f"{STATUS_MARK.get(entry.status, '?')} ", style), ("tool ", "bold"),
                            safe(entry.title or entry.tool or entry.kind), (f"  [{entry.status}]", style))
        lines = 0
        for part in entry.content:
            if part.get("type") == "diff":
                out.append_text(Text.assemble("\n  ", (safe(part.get("path", "")).plain, "bold")))
                old = (part.get("old") or "").splitlines()
                new = (part.get("new") or "").splitlines()
                for sign, chunk, colour in (("-", old, "red"), ("+", new, "green")):
                    for line in chunk:
                        if lines >= MAX_DIFF_LINES:
                            break
                        out.append_text(Text.assemble("\n  ", (f"{sign} ", colour), safe(line, colour)))
                        lines += 1
            elif part.get("type") == "text" and part.get("text"):
                out.append_text(Text.assemble("\n  ", safe(part["text"][:500], "dim")))
        return out
    return Text("")


class ConversationView(Vertical):
    """Follows one ACP agent (anything with ``name``, ``conversation``, ``prompt``, ``cancel``)."""

    BINDINGS = [Binding("escape", "cancel_turn", "Cancel the turn", show=False)]
    DEFAULT_CSS = """
    ConversationView { height: 1fr; }
    ConversationView > #acp-log { height: 1fr; padding: 0 1; }
    ConversationView > #acp-log > .acp-entry { margin-bottom: 1; }
    ConversationView > #acp-status { height: 1; color: $text-muted; padding: 0 1; }
    ConversationView > #acp-prompt { dock: bottom; }
    """

    def __init__(self, agent: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.agent = agent
        self._widgets: dict[int, Static] = {}
        self._shown: dict[int, Text] = {}  # what each entry's widget shows
        self._dirty: dict[int, Any] = {}
        self._refresh_pending = False

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="acp-log")
        yield Static(self._status_text(), id="acp-status")
        yield Input(placeholder=f"Prompt {self.agent.name} (Enter sends, Esc cancels a turn)", id="acp-prompt")

    def on_mount(self) -> None:
        for entry in self.agent.conversation.entries:
            self._dirty[id(entry)] = entry
        self.agent.conversation.listeners.append(self._changed)
        self.agent.turn_listeners.append(self._turn_ended)
        self._flush()

    def on_unmount(self) -> None:
        for listeners, listener in ((self.agent.conversation.listeners, self._changed),
                                    (self.agent.turn_listeners, self._turn_ended)):
            try:
                listeners.remove(listener)
            except ValueError:
                pass

    def _status_text(self) -> Text:
        notes = getattr(self.agent, "notes", [])
        if self.busy:
            return Text(f"{self.agent.name} is working… (Esc cancels)", "yellow")
        if notes:
            return safe(notes[-1], "yellow")
        return Text(f"{self.agent.name}: structured turns (ACP)", "dim")

    def _changed(self, entry: Any) -> None:
        self._dirty[id(entry)] = entry
        if not self._refresh_pending:
            self._refresh_pending = True
            self.call_later(self._flush)

    def _flush(self) -> None:
        self._refresh_pending = False
        log = self.query_one("#acp-log", VerticalScroll)
        dirty, self._dirty = self._dirty, {}
        added = []
        for key, entry in dirty.items():
            rendered = self._shown[key] = render_entry(entry, self.agent.name)
            widget = self._widgets.get(key)
            if widget is None:
                widget = self._widgets[key] = Static(rendered, classes="acp-entry")
                added.append(widget)
            else:
                widget.update(rendered)
        if added:
            log.mount_all(added)
        log.scroll_end(animate=False)
        self.query_one("#acp-status", Static).update(self._status_text())

    def transcript(self) -> str:
        """What the view shows, as plain text (for tests and copying)."""
        return "\n".join(text.plain for text in self._shown.values())

    @on(Input.Submitted, "#acp-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.busy:
            return
        event.input.value = ""
        try:
            self.agent.start_turn(text)  # the agent's task: it outlives this view
        except Exception as exc:
            self.agent.notes.append(str(exc))
        self.query_one("#acp-status", Static).update(self._status_text())

    @property
    def busy(self) -> bool:
        """A turn of the agent runs (whichever view started it)."""
        return bool(getattr(self.agent, "busy", False))

    def _turn_ended(self, stop: str) -> None:
        if self.is_mounted:
            self.call_later(self._show_end, stop)

    def _show_end(self, stop: str) -> None:
        status = self._status_text() if stop == "error" else Text(f"turn ended: {stop}", "dim")
        self.query_one("#acp-status", Static).update(status)

    def action_cancel_turn(self) -> None:
        if self.busy:
            self.agent.cancel()
