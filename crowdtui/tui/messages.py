"""App-level messages: results of workers and pollers, posted to the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from crowdtui.tui.crew import AgentRow


@dataclass
class CrewChanged(Message, bubble=False):
    """The agent list's rows (already ordered)."""

    rows: list[AgentRow]


@dataclass
class EventsArrived(Message, bubble=False):
    """New rows from the store's events table, oldest first."""

    events: list[Any]


@dataclass
class RuntimeReady(Message, bubble=False):
    """The Docker runtime is connected (``runtime`` set) or unavailable (``error`` set)."""

    runtime: Any = None
    client: Any = None
    error: str | None = None


@dataclass
class ContainersChanged(Message, bubble=False):
    """name -> ContainerInfo of this workspace's agent containers."""

    containers: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatsUpdated(Message, bubble=False):
    """name -> stats (``cpu`` percent, ``memory`` bytes)."""

    stats: dict[str, Any] = field(default_factory=dict)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatsUpdated)


@dataclass
class RosterLoaded(Message, bubble=False):
    """The roster on disk was (re)read: name -> AgentDef, and its problems."""

    agents: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    roster: Any = None


@dataclass
class OperationDone(Message, bubble=False):
    """A start/stop/restart/exec (or other blocking operation) finished."""

    what: str
    ok: bool
    detail: str = ""
    result: Any = None


@dataclass
class LogLines(Message, bubble=False):
    """New log lines: (agent, line) pairs, oldest first."""

    lines: list[tuple[str, str]]


@dataclass
class HubStatus(Message, bubble=False):
    """Which hub serves the workspace: ``own`` (started by this app), ``other`` or ``none``."""

    mode: str
    detail: str = ""
