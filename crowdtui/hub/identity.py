"""Who is calling: bound to the door (socket) or the bearer token, never to an argument.

A unix-socket connection sets ``DOOR_AGENT`` in the task that serves it; every request
handled for that connection inherits it. The HTTP transport authenticates each request
from its ``Authorization`` header. The middleware resolves the caller once per request
into ``CALLER``, which the tools read through ``caller()``.
"""

from __future__ import annotations

import contextvars

DOOR_AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("crowd_door_agent", default=None)
CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("crowd_caller", default=None)
VIA: contextvars.ContextVar[str] = contextvars.ContextVar("crowd_via", default="socket")
# How a door-bound connection came in, when it is not an agent's own socket (``stdio``
# for ``crowdtui mcp``, ``relay:<engine>`` for an engine's relay); recorded as ``via`` on each call.
DOOR_VIA: contextvars.ContextVar[str | None] = contextvars.ContextVar("crowd_door_via", default=None)


class NoCaller(RuntimeError):
    """A tool ran outside a door; this is a bug in the hub, not the caller's fault."""


def caller() -> str:
    name = CALLER.get()
    if not name:
        raise NoCaller("no caller bound to this request")
    return name
