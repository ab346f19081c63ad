"""The outbound queue: texts waiting for the channel that owns their chat.

The queue lives in the store (:mod:`qms.outbound`: rows, retries with a growing delay,
give-up after ``MAX_ATTEMPTS``, the ``chat.reply`` and ``chat.undelivered`` events); the
engine's sender (:mod:`crowdtui.engine.service`) takes what is due and posts it.
"""

from __future__ import annotations

from qms.outbound import (
    BASE_DELAY, MAX_ATTEMPTS, MAX_DELAY, Outbound, due, enqueue, list_outbound, mark_failed, mark_sent, next_due_at,
)

__all__ = ["BASE_DELAY", "MAX_ATTEMPTS", "MAX_DELAY", "Outbound", "due", "enqueue", "list_outbound", "mark_failed",
           "mark_sent", "next_due_at"]
