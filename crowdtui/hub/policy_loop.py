"""The loop every hub policy runs (announcements, launch policies, supervision).

Each policy has a ``step()`` that reads the events after its ``last_event`` (through its
``EventFollower``, see ``EventPolicy``) and acts;
``run_steps`` calls it every ``poll`` seconds from the store's current last event, and a
step that fails is logged and retried (one policy's error never stops the others).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from qms.follow import EventFollower

POLICY_BATCH = 1000  # events a policy reads at most per step


class EventPolicy:
    """A policy that reads the events of ``KINDS`` in its ``step()`` (through one
    ``EventFollower``, ``self.events``); ``last_event`` is its position."""

    KINDS: tuple[str, ...] = ()

    def follow_events(self, store: Any) -> None:
        self.events = EventFollower(store, 0, kinds=self.KINDS, batch=POLICY_BATCH)

    @property
    def last_event(self) -> int:
        return self.events.last or 0

    @last_event.setter
    def last_event(self, value: int) -> None:
        self.events.last = value


async def run_steps(policy: Any, what: str, from_event: int | None = None,
                    before: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run ``policy.step()`` forever (until cancelled), starting after ``from_event``
    (default: the store's last event now); ``before`` runs once first (e.g. a catch-up)."""
    log = logging.getLogger(type(policy).__module__)
    policy.last_event = await policy.store.last_event_id() if from_event is None else from_event
    if before is not None:
        await before()
    while True:
        try:
            await policy.step()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying", what)
        await asyncio.sleep(policy.poll)
