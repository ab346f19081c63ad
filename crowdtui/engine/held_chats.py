"""Held chats (no route accepts them): the operator's two answers, in one place.

``crowdtui onboard approve|deny`` and the console's Held view both call these, so both
check the same things, record the same events (``onboard.approved`` / ``onboard.denied``,
or ``route.refused`` when someone else asks) and tell the operator the same line. The store
work is :func:`crowdtui.engine.inbound.approve_chat` and ``deny_chat``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from crowdtui.engine.inbound import approve_chat, deny_chat
from crowdtui.text_safety import inert


def _messages(n: int) -> str:
    return f"{n} held message{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class HeldAnswer:
    """What became of a held chat: ``agent`` and ``route_id`` are set when it was approved."""

    chat: str
    released: int  # messages sent back to the router (approved) or dropped (denied)
    agent: str | None = None
    route_id: int | None = None

    @property
    def summary(self) -> str:
        """One line for the operator, control characters made visible."""
        if self.agent is None:
            return inert(f"dropped {_messages(self.released)} of chat {self.chat}")
        return inert(f"chat {self.chat} -> {self.agent} (route {self.route_id}); "
                     f"{_messages(self.released)} released (a running serve delivers them)")


async def approve_held_chat(store, chat: str, agent: str, *, actor: str) -> HeldAnswer:
    """Route ``chat`` to ``agent`` (a ``chat=`` route first in the table) and release what it
    sent to the router. Only the operator may; anyone else is refused and recorded."""
    route_id, released = await approve_chat(store, chat, agent, actor=actor, now=time.time())
    return HeldAnswer(chat=chat, released=released, agent=agent, route_id=route_id)


async def deny_held_chat(store, chat: str, *, actor: str) -> HeldAnswer:
    """Drop what ``chat`` sent (kept as ``denied`` for the record); later messages are held again."""
    return HeldAnswer(chat=chat, released=await deny_chat(store, chat, actor=actor))
