"""The loop every hub policy runs (announcements, launch policies, supervision).

Each policy has a ``step()`` that reads the events after its ``last_event`` and acts;
``run_steps`` calls it every ``poll`` seconds from the store's current last event, and a
step that fails is logged and retried (one policy's error never stops the others).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable


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
