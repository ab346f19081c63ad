"""The activity feed: the store's events in words (``qms.event_words``), newest last,
filterable by agent and kind; ``J`` shows each event's kind and JSON detail instead."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, RichLog

from crowdtui.tui.text import clock, inert, safe
from crowdtui.tui.widgets.focus import focus_when_shown
from qms.event_words import describe

KIND_STYLE = {
    "message": "cyan",
    "doc": "magenta",
    "agent": "green",
    "hub": "blue",
}
MAX_EVENTS = 5000


def event_line(ev: Any, time_format=clock, *, raw: bool = False) -> Text:
    """One line: the time and the event in words, or (``raw``) actor, kind, subject and JSON."""
    kind = str(ev.kind)
    if not raw:
        return Text.assemble((time_format(ev.at) + " ", "dim"),
                             safe(describe(ev), KIND_STYLE.get(kind.split(".", 1)[0], "")), no_wrap=True)
    detail = ev.detail or {}
    try:
        detail_text = json.dumps(detail, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        detail_text = str(detail)
    if detail_text in ("{}", "null"):
        detail_text = ""
    return Text.assemble(
        (time_format(ev.at) + " ", "dim"),
        safe(ev.actor, "bold"),
        " ",
        (inert(kind), KIND_STYLE.get(kind.split(".", 1)[0], "")),
        " ",
        safe(ev.subject or ""),
        " ",
        safe(detail_text[:300], "dim"),
        no_wrap=True,
    )


class ActivityView(Vertical):
    """Every event of the workspace, as it happens."""

    DEFAULT_CSS = """
    ActivityView { height: 1fr; }
    ActivityView > Horizontal { height: 1; }
    ActivityView Input { width: 1fr; height: 1; border: none; padding: 0 1; background: $boost; }
    ActivityView > RichLog { height: 1fr; }
    """
    BINDINGS = [Binding("J", "toggle_json", "words/JSON")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.events: deque[Any] = deque(maxlen=MAX_EVENTS)
        self.agent_filter = ""
        self.kind_filter = ""
        self.time_format = clock
        self._stale = False
        self.raw = False  # True: kind and JSON detail instead of words

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Input(placeholder="agent (actor or subject)", id="activity-agent")
            yield Input(placeholder="kind, e.g. doc. or message.sent", id="activity-kind")
        yield RichLog(id="activity-log", wrap=False, markup=False, max_lines=MAX_EVENTS)

    def matches(self, ev: Any) -> bool:
        a, k = self.agent_filter, self.kind_filter
        if a and a not in str(ev.actor).lower() and a not in str(ev.subject or "").lower():
            return False
        if k and not str(ev.kind).lower().startswith(k):
            return False
        return True

    def add_events(self, events: list[Any]) -> None:
        self.events.extend(events)
        if not self.region.area:  # hidden: catch up when shown
            self._stale = True
            return
        log = self.query_one(RichLog)
        for ev in events:
            if self.matches(ev):
                log.write(event_line(ev, self.time_format, raw=self.raw))

    def on_show(self) -> None:
        focus_when_shown(self, self.query_one(RichLog))  # its keys (J) work at once
        if self._stale:
            self._rerender()

    def action_toggle_json(self) -> None:
        self.raw = not self.raw
        self._rerender()

    def set_filter(self, agent: str | None = None, kind: str | None = None) -> None:
        if agent is not None:
            self.agent_filter = agent.strip().lower()
            self.query_one("#activity-agent", Input).value = agent
        if kind is not None:
            self.kind_filter = kind.strip().lower()
            self.query_one("#activity-kind", Input).value = kind
        self._rerender()

    @property
    def shown(self) -> list[Any]:
        return [ev for ev in self.events if self.matches(ev)]

    def _rerender(self) -> None:
        self._stale = False
        log = self.query_one(RichLog)
        log.clear()
        for ev in self.shown:
            log.write(event_line(ev, self.time_format, raw=self.raw))

    @on(Input.Changed, "#activity-agent")
    def _agent_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.agent_filter = event.value.strip().lower()
        self._rerender()

    @on(Input.Changed, "#activity-kind")
    def _kind_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.kind_filter = event.value.strip().lower()
        self._rerender()
