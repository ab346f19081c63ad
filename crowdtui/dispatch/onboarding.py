"""Onboarding: chats from unknown senders wait (held) until the operator approves or denies them.

One home for the rule, used by the CLI (``crowdtui onboard``), the console's Held view and
dispatch's tools: only the operator may let a held chat in (a route ``chat=<chat>`` to an
agent, first in the table, and the held messages back to the router) or drop it. An
agent's attempt is refused and recorded (``route.refused`` with action ``onboard.*``).
The rows and events live in the store (:mod:`qms.inbound`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from qms import inbound as inbound_rows
from qms.errors import PermissionDenied
from qms.inbound import Hold
from qms.names import OPERATOR, validate_name

from crowdtui.dispatch.inbound import MAX_CHAT
from crowdtui.dispatch.matching import glob_escape
from crowdtui.dispatch.routes import record_refusal
from crowdtui.text_safety import inert

__all__ = ["HeldAnswer", "Hold", "approve_chat", "approve_held_chat", "approved_line", "deny_chat",
           "deny_held_chat", "denied_line", "list_holds"]


async def list_holds(store) -> list[Hold]:
    """The chats waiting for the operator, oldest first."""
    return await inbound_rows.list_holds(store)


async def _operator_only(store, actor: str, action: str, chat: str) -> None:
    if actor != OPERATOR:
        reason = f"only the operator may {action} a held chat; {actor} asked to {action} {chat!r}"
        await record_refusal(store, actor, f"onboard.{action}", chat[:MAX_CHAT], reason)
        raise PermissionDenied(reason)


async def approve_chat(store, chat: str, agent: str, *, actor: str, now: float) -> tuple[int, int]:
    """Let ``chat`` in: a route ``chat=<chat>`` to ``agent`` goes first in the table and the
    held messages go back to the router. Returns (route id, messages released).
    Only the operator may: an agent's route never lets an unknown sender in."""
    validate_name(agent)
    await _operator_only(store, actor, "approve", chat)
    return await inbound_rows.approve_held(store, chat, agent, match=f"chat={glob_escape(chat)}", actor=actor, now=now)


async def deny_chat(store, chat: str, *, actor: str) -> int:
    """Drop the messages held for ``chat`` (kept as ``denied`` for the record)."""
    await _operator_only(store, actor, "deny", chat)
    return await inbound_rows.deny_held(store, chat, actor=actor)


def approved_line(chat: str, agent: str, route_id: int, released: int) -> str:
    """What the operator is told after approving (the CLI and the console say the same)."""
    return (f"chat {chat} -> {agent} (route {route_id}); {released} held message{'s' if released != 1 else ''} "
            "released (a running serve delivers them)")


def denied_line(chat: str, dropped: int) -> str:
    return f"dropped {dropped} held message{'s' if dropped != 1 else ''} of chat {chat}"


@dataclass(frozen=True)
class HeldAnswer:
    """What became of a held chat: ``agent`` and ``route_id`` are set when it was approved."""

    chat: str
    released: int  # messages sent back to the router (approved) or dropped (denied)
    agent: str | None = None
    route_id: int | None = None

    @property
    def summary(self) -> str:
        """One line for the operator (the CLI and the console say the same), control
        characters made visible."""
        if self.agent is None or self.route_id is None:
            return inert(denied_line(self.chat, self.released))
        return inert(approved_line(self.chat, self.agent, self.route_id, self.released))


async def approve_held_chat(store, chat: str, agent: str, *, actor: str) -> HeldAnswer:
    """The operator's "let it in": :func:`approve_chat` now, with the line to show."""
    route_id, released = await approve_chat(store, chat, agent, actor=actor, now=time.time())
    return HeldAnswer(chat=chat, released=released, agent=agent, route_id=route_id)


async def deny_held_chat(store, chat: str, *, actor: str) -> HeldAnswer:
    """The operator's "drop it": :func:`deny_chat`, with the line to show."""
    return HeldAnswer(chat=chat, released=await deny_chat(store, chat, actor=actor))
