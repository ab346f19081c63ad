"""Logs of every agent merged into one searchable stream."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from crowdtui.tui.text import safe

MAX_LINES = 10000
PALETTE = ["cyan", "green", "magenta", "yellow", "blue", "bright_cyan", "bright_green",
           "bright_magenta"]


class LogsView(Vertical):
    """(agent, line) pairs in arrival order; the search box keeps matching lines only."""

    DEFAULT_CSS = """
    LogsView { height: 1fr; }
    LogsView > Input { height: 3; }
    LogsView > RichLog { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: deque[tuple[str, str]] = deque(maxlen=MAX_LINES)
        self.search = ""
        self.agent: str | None = None
        self._colours: dict[str, str] = {}

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
        log = self.query_one(RichLog)
        for agent, line in lines:
            self.lines.append((agent, line))
            if self.matches(agent, line):
                log.write(self._line(agent, line))

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
        log = self.query_one(RichLog)
        log.clear()
        for agent, line in self.shown:
            log.write(self._line(agent, line))

    @on(Input.Changed, "#logs-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.search = event.value.strip().lower()
        self._rerender()
