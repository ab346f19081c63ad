"""Announce new inbox items in the agent's terminal, as a short typed line.

The notice starts with ``[crowd]`` so neither a person nor a program can take it for
an answer to a question on screen (it is never "y", a number, or a bare word), and it
says what to do: ``[crowd] 2 new messages (from lead, qa): call get_messages``. Notices
are coalesced per agent (at most one every ``min_interval`` seconds) and only typed for
agents whose definition says ``announce: true`` (the default).

The announcer follows ``message.sent`` events in the store; how a line reaches the
terminal is a ``Typist`` (``pty_typist`` writes through the runtime's shared PTY
sessions, the same stream the operator's terminal views use).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from crowdtui.hub.directory import Directory
from crowdtui.hub.policy_loop import EventPolicy, run_steps
from qms.names import OPERATOR

log = logging.getLogger(__name__)

Typist = Callable[[str, bytes], Awaitable[bool]]  # (agent, bytes) -> typed?
PREFIX = "[crowd]"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def notice_text(count: int, senders: list[str], high: bool) -> str:
    who = ", ".join(sorted(set(senders))[:3]) + (", ..." if len(set(senders)) > 3 else "")
    what = "new message" if count == 1 else "new messages"
    urgent = " (high priority)" if high else ""
    line = f"{PREFIX} {count} {what}{urgent} from {who}: call get_messages"
    return _UNSAFE.sub("", line)[:200]


def notice_keys(definition: Any, line: str) -> bytes:
    """The keys that type ``line`` into the agent's prompt and submit it (its runner knows how
    to keep a half-typed operator line out of it); a plain line and Enter without a definition."""
    if definition is not None and hasattr(definition, "runner"):
        from crowdtui.runners import runner_for

        return runner_for(definition).notice_keys(line)
    return (line + "\r").encode()


@dataclass
class _Pending:
    count: int = 0
    senders: list[str] = field(default_factory=list)
    high: bool = False


class Announcer(EventPolicy):
    KINDS = ("message.sent",)

    def __init__(self, store: Any, directory: Directory, typist: Typist, *, min_interval: float = 2.0,
                 poll: float = 0.3):
        self.store = store
        self.directory = directory
        self.typist = typist
        self.min_interval = min_interval
        self.poll = poll
        self.follow_events(store)
        self._pending: dict[str, _Pending] = {}
        self._last_typed: dict[str, float] = {}

    async def run(self, from_event: int | None = None) -> None:
        await run_steps(self, "announcing", from_event)

    async def step(self) -> list[tuple[str, str]]:
        """Read new events, type what is due; returns the (agent, line) pairs typed."""
        events = await self.events.read()
        for e in events:
            recipient = e.subject
            if recipient == OPERATOR:
                continue
            p = self._pending.setdefault(recipient, _Pending())
            p.count += 1
            p.senders.append(str(e.detail.get("from") or e.actor))
            p.high = p.high or e.detail.get("priority") == "high"
        typed = []
        now = time.monotonic()
        for agent, p in list(self._pending.items()):
            if now - self._last_typed.get(agent, -1e9) < self.min_interval:
                continue
            del self._pending[agent]
            info = await self.directory.info(agent)
            if info is None or not info.announce:
                continue
            line = notice_text(p.count, p.senders, p.high)
            try:
                ok = await self.typist(agent, notice_keys(self.directory.definition(agent), line))
            except Exception as exc:
                log.info("could not announce to %s: %s", agent, exc)
                ok = False
            if ok:
                self._last_typed[agent] = now
                typed.append((agent, line))
        return typed


def pty_typist(runtime: Any, pool: Any) -> Typist:
    """Type into the agent's container terminal through the shared PTY sessions."""

    async def typist(agent: str, data: bytes) -> bool:
        info = await runtime.info(agent)
        if info is None or not info.running:
            return False
        session = await pool.get(info.container_id)
        session.write(data)
        return True

    return typist
