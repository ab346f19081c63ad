"""Held chats (onboarding): messages from senders no route accepts, waiting for the operator."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from crowdtui.tui.screens.form import Field, FormScreen
from crowdtui.tui.text import clock, first_line, inert, safe
from qms.names import OPERATOR


class OnboardingView(Vertical):
    """One row per held chat. ``A`` approves (routes the chat to an agent), ``X`` denies."""

    DEFAULT_CSS = """
    OnboardingView { height: 1fr; }
    OnboardingView > #held-title { height: 1; background: $panel; padding: 0 1; }
    OnboardingView > DataTable { height: 1fr; min-height: 3; overflow-x: hidden; }
    OnboardingView > #held-last { height: auto; max-height: 6; padding: 0 1; border-top: hkey $panel-lighten-2; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.holds: list[Any] = []
        self.time_format: Callable[[Any], str] = clock

    def compose(self) -> ComposeResult:
        yield Static(id="held-title")
        yield DataTable(cursor_type="row", id="held-table")
        yield Static(id="held-last")

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        # fixed widths that fit 80 columns: the list does not jump about as chats come and go
        t.add_column("chat", key="chat", width=18)
        t.add_column("channel", key="channel", width=7)
        t.add_column("senders", key="senders", width=10)
        t.add_column("n", key="count", width=3)
        t.add_column("since", key="since", width=8)
        t.add_column("last", key="last", width=18)
        self._title()
        self._detail()

    def _title(self) -> None:
        n = len(self.holds)
        self.query_one("#held-title", Static).update(Text.assemble(
            ("Held chats ", "bold"),
            (f"{n} waiting", "bold yellow") if n else ("none waiting", "dim"),
            " · A approve (route to an agent)  X deny (drop)",
        ))

    def _detail(self) -> None:
        h = self.current
        if h is None:
            text = Text("Messages from chats no route accepts wait here until you approve or deny them.",
                        "dim")
        else:
            text = Text.assemble(safe(h.chat, "bold"), " last said: ", safe(h.last_text, multiline=True))
        self.query_one("#held-last", Static).update(text)

    @property
    def current(self) -> Any | None:
        t = self.query_one(DataTable)
        if not self.holds or not (0 <= t.cursor_row < len(self.holds)):
            return None
        return self.holds[t.cursor_row]

    def show(self, holds: list[Any]) -> None:
        keep = getattr(self.current, "chat", None)
        self.holds = list(holds)
        t = self.query_one(DataTable)
        t.clear()
        for h in self.holds:
            t.add_row(
                safe(h.chat, "bold"),
                safe(h.channel),
                safe(", ".join(h.senders)),
                Text(str(h.count)),
                Text(self.time_format(h.first_at)),
                safe(first_line(h.last_text, 60)),
                key=h.chat,
            )
        chats = [h.chat for h in self.holds]
        if keep in chats:
            t.move_cursor(row=chats.index(keep))
        self._title()
        self._detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    # ---- the operator's answer to a held chat (the console's keys A and X here, and the
    # palette). Each asks first (so it runs in a worker); True when done.
    async def approve(self, chat: str) -> bool:
        """Route ``chat`` to an agent the operator picks; its held messages are released."""
        from crowdtui.dispatch.onboarding import approve_held_chat

        app: Any = self.app
        names = sorted(r.name for r in app.rows if not r.is_operator)
        if not names:
            app.notify("no agents to route the chat to", severity="warning", markup=False)
            return False
        default = app.selected if app.selected in names else names[0]
        vals = await app.push_screen_wait(FormScreen(
            f"Approve chat {chat} ({self._held_count(chat)})",
            [Field("agent", "route it to the agent", names, value=default)]))
        if not vals:
            return False
        try:
            answer = await approve_held_chat(app.store, chat, vals["agent"], actor=OPERATOR)
        except Exception as exc:  # the refusal, told to the operator as it is
            app.notify(inert(f"approve {chat}: {exc}"), severity="error", markup=False, timeout=8)
            return False
        app.notify(answer.summary, markup=False)
        app.refresh_held()
        return True

    async def deny(self, chat: str) -> bool:
        """Drop ``chat``'s held messages, once the operator confirms."""
        from crowdtui.dispatch.onboarding import deny_held_chat

        app: Any = self.app
        vals = await app.push_screen_wait(FormScreen(
            f"Deny chat {chat}: drop {self._held_count(chat)}?", []))
        if vals is None:
            return False
        try:
            answer = await deny_held_chat(app.store, chat, actor=OPERATOR)
        except Exception as exc:  # the refusal, told to the operator as it is
            app.notify(inert(f"deny {chat}: {exc}"), severity="error", markup=False, timeout=8)
            return False
        app.notify(answer.summary, markup=False)
        app.refresh_held()
        return True

    def _held_count(self, chat: str) -> str:
        hold = next((h for h in self.holds if h.chat == chat), None)
        count = hold.count if hold is not None else 0
        return f"{count} held message{'s' if count != 1 else ''}" if count else "its held messages"
