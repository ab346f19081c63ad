"""``?``: every key the console answers to."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: (section, key, what it does) — the one list the help screen shows
KEYS: list[tuple[str, str, str]] = [
    ("Anywhere", "?", "this help"),
    ("Anywhere", ":  or  ctrl+p", "command palette (start, stop, restart, views, …)"),
    ("Anywhere", "/", "filter the agent list (in Logs: search the logs)"),
    ("Anywhere", "1 2 3 4 5 6", "views: Terminal Inbox Docs Activity Logs Held"),
    ("Anywhere", "7 8 9 0  P", "views: Routes Tasks Channels Secrets, P Approvals"),
    ("Anywhere", "ctrl+f", "search messages and documents (enter on a document opens it; / searches again)"),
    ("Anywhere", "tab / shift+tab", "move focus between the list and the view"),
    ("Anywhere", "a", "views show the selected agent only / every agent"),
    ("Anywhere", "q  or  ctrl+q", "quit (agents keep running)"),
    ("Agents", "j k  ↑ ↓", "select an agent"),
    ("Agents", "s", "start the selected agent"),
    ("Agents", "x", "stop the selected agent"),
    ("Agents", "r", "restart the selected agent"),
    ("Agents", "enter  or  t", "type into the selected agent's terminal"),
    ("Agents", "T", "mode: acp agents: their conversation (prompt line, plan, tool calls) or their raw terminal"),
    ("Agents", "f", "the selected agent's terminal full screen"),
    ("Agents", "e", "exec: a shell in the agent's container, as a new terminal tab"),
    ("Terminal", "ctrl+]", "leave the terminal (back from full screen); the agent keeps running"),
    ("Terminal", "ctrl+w", "close an exec shell tab"),
    ("Inbox", "c", "compose a message to the selected agent"),
    ("Inbox", "R", "reply to the highlighted message"),
    ("Inbox", "b", "broadcast to a selection of agents"),
    ("Inbox", "m", "mark the highlighted message read (your own inbox)"),
    ("Documents", "enter", "open a document: content, versions, diff between any two"),
    ("Documents", "w", "every action the workflow allows now (and only those)"),
    ("Documents", "N", "new document"),
    ("Documents", "E", "edit in $EDITOR: check out, edit, check in a new version"),
    ("Documents", "i", "edit inline (ctrl+s checks in, escape cancels)"),
    ("Documents", "A / X", "approve / reject the highlighted document"),
    ("Documents", "V", "review (recommend or request updates, with a comment)"),
    ("Documents", "O", "route for review or approval"),
    ("Documents", "L", "break the checkout lock"),
    ("Activity", "J", "events in words / as kind and JSON"),
    ("Routes", "n  K J  D", "add, move up, move down, remove a route"),
    ("Routes", "A / X", "approve / reject an agent's pending (wide) route"),
    ("Tasks", "n  p  D", "add, pause or resume, remove a scheduled task"),
    ("Channels", "", "health, failed checks, last good check, last message"),
    ("Secrets", "n  D", "set (the value typed hidden), remove; values are never shown"),
    ("Held", "A", "approve a held chat: route it to an agent (asks which), deliver it"),
    ("Held", "X", "deny a held chat: drop its held messages"),
    ("Dialogs", "ctrl+s", "send / submit"),
    ("Dialogs", "escape", "cancel"),
]


#: the Approvals screen's keys (crowdtui.tui.screens.approvals), shown by ? there
APPROVAL_KEYS: list[tuple[str, str, str]] = [
    ("Approvals", "j k  ↑ ↓", "highlight a request; its title, input and diff show below"),
    ("Approvals", "y / Y", "allow the highlighted request once / always (for that agent and tool)"),
    ("Approvals", "n / N", "reject the highlighted request once / always"),
    ("Approvals", "A / X", "allow / reject once (as in the other views)"),
    ("Approvals", "u", "the remembered \"always\" rules / back to the requests"),
    ("Rules", "D", "revoke the highlighted rule (asks first): the agent asks again next time"),
    ("Anywhere", "escape", "back to the console"),
]


def keys_table(keys: list[tuple[str, str, str]] | None = None) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, expand=True)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    section = None
    for sec, key, what in KEYS if keys is None else keys:
        if sec != section:
            if section is not None:
                table.add_row("", "")
            table.add_row(Text(sec, "bold underline"), "")
            section = sec
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 100; height: 90%; border: thick $accent; background: $surface;
        padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "close"),
    ]

    def __init__(self, keys: list[tuple[str, str, str]] | None = None, title: str = "crowdtui keys") -> None:
        super().__init__()
        self.keys = keys
        self.help_title = title

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(f"{self.help_title} — escape closes", "bold"))
            yield Static(keys_table(self.keys), id="help-keys")

    def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
