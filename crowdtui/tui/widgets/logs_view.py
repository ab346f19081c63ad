"""Logs of every agent merged into one searchable stream."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from crowdtui.tui.text import safe

MAX_LINES = 10000  # kept (and searched)
SHOW_PER_BATCH = 500  # drawn at once; older matches scroll out of the view
PALETTE = ["cyan", "green", "magenta", "yellow", "blue", "bright_cyan", "bright_green",
           "bright_magenta"]


class LogsView(Vertical):
    """(agent, line) pairs in arrival order; the search box keeps matching lines only."""

    DEFAULT_CSS = """
    LogsView { height: 1fr; }
    LogsView > Input { height: 1; border: none; padding: 0 1; background: $boost; }
    LogsView > RichLog { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: deque[tuple[str, str]] = deque(maxlen=MAX_LINES)
        self.search = ""
        self.agent: str | None = None
        self._colours: dict[str, str] = {}
        self._stale = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search logs (all agents)", id="logs-search")
        yield RichLog(id="logs-log", wrap=False, markup=False, max_lines=MAX_LINES)

    def _colour(self, agent: str) -> str:
        if agent not in self._colours:
            self._colours[agent] = PALETTE[len(self._colours) % len(PALETTE)]
        return self._colours[agent]

    def matches(self, agent: str, line: str) -> bool:
        if self.agent is not None and agent != self.agent:
            return False
        return not self.search or self.search in line.lower() or self.search in agent.lower()

    def _line(self, agent: str, line: str) -> Text:
        return Text.assemble(safe(agent.ljust(12), self._colour(agent)), " ", safe(line),
                             no_wrap=True)

    def add_lines(self, lines: list[tuple[str, str]]) -> None:
        self.lines.extend(lines)
        if not self.region.area:  # hidden: catch up when shown (a flood costs nothing here)
            self._stale = True
            return
        log = self.query_one(RichLog)
        shown = [(a, l) for a, l in lines if self.matches(a, l)]
        if len(shown) > SHOW_PER_BATCH:  # a flood: the view shows the newest lines only
            log.clear()
            shown = [(a, l) for a, l in self.lines if self.matches(a, l)][-SHOW_PER_BATCH:]
        for agent, line in shown:
            log.write(self._line(agent, line))

    def on_show(self) -> None:
        if self._stale:
            self._rerender()

    @property
    def shown(self) -> list[tuple[str, str]]:
        return [(a, l) for a, l in self.lines if self.matches(a, l)]

    def set_agent(self, agent: str | None) -> None:
        self.agent = agent
        self._rerender()

    def set_search(self, text: str) -> None:
        self.query_one(Input).value = text
        self.search = text.strip().lower()
        self._rerender()

    def _rerender(self) -> None:
        self._stale = False
        log = self.query_one(RichLog)
        log.clear()
        for agent, line in self.shown[-SHOW_PER_BATCH:]:
            log.write(self._line(agent, line))

    @on(Input.Changed, "#logs-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.search = event.value.strip().lower()
        self._rerender()
