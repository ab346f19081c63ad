"""The crew's one approval queue: an agent asks for permission and waits for the answer.

``request_permission`` opens a request in the store (:mod:`qms.permissions`) and waits until
it is closed, by whichever process answers it: the console, ``crowdtui approvals``, the
operator in a chat channel, the agent's parent through the hub's ``answer_permission`` tool,
or an "always" rule (then at once). The answer is seen by following the store's events
(:class:`qms.follow.EventFollower`, the one way a process reads what changed). Past the
timeout (crowd.toml ``[approvals] timeout``) the request is rejected as ``expired``; a
waiter that is cancelled marks it ``cancelled``. Every request and answer is an event.

``answer_permission`` is the one path an answer takes, whoever gives it; who may answer
what (the operator everything, a parent its descendants' requests within its own grants)
is decided by the caller's door (:mod:`crowdtui.hub.approval_tools` for agents).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable

from qms import permissions
from qms.follow import EventFollower
from qms.permissions import PermissionRequest

log = logging.getLogger(__name__)

POLL = 0.1  # seconds between looks at the store's events while a request waits
ACTOR = "hub"  # who expires or cancels a request
# Waiters in this process, by request id: an answer given here (the console, the hub's
# tool, the CLI in-process) wakes its waiter at once instead of at its next look. A spurious
# wake (another store's request with the same id) only costs one read.
_wakers: dict[int, asyncio.Event] = {}


@dataclass(frozen=True)
class Decision:
    """How a request ended. ``outcome``: allow_once, allow_always, reject_once,
    reject_always, expired or cancelled; ``answered_by``: operator, an agent, ``rule`` (an
    "always" rule), or ``hub`` (expired, cancelled)."""

    request_id: int
    outcome: str
    answered_by: str

    @property
    def allowed(self) -> bool:
        return self.outcome in permissions.ALLOWING

    @classmethod
    def of(cls, request: PermissionRequest) -> "Decision":
        return cls(request.id, request.outcome or permissions.CANCELLED, request.answered_by or ACTOR)


async def request_permission(store: Any, *, agent: str, tool: str, title: str, diff: str | None = None,
                             detail: dict | None = None, timeout: float | None = None,
                             options: Iterable[str] | None = None) -> Decision:
    """Open a permission request for ``agent`` and wait for its answer.

    ``tool``: the key "always" answers are remembered by (per agent); ``title``: one line
    for people; ``diff``: unified diff text when the call changes files; ``detail``: the
    call's input (JSON, bounded); ``timeout``: seconds (None: the store's
    ``permission_timeout``, from crowd.toml ``[approvals] timeout``); ``options``: the
    answers the agent offers (default all four). A matching rule answers at once, whatever
    ``options`` says: map ``Decision.allowed`` to the agent's own option then.
    Raises the store's ``InvalidInput``/``NotFound`` for a bad request (nothing is opened).
    """
    wait = float(store.permission_timeout if timeout is None else timeout)
    request, after = await permissions.open_request(store, agent=agent, tool=tool, title=title, detail=detail,
                                                    diff=diff, options=options, now=time.time(), timeout=wait)
    if request.state != permissions.PENDING:
        return Decision.of(request)
    follower = EventFollower(store, after=after, kinds=permissions.CLOSING_KINDS, interval=POLL)
    waker = _wakers.setdefault(request.id, asyncio.Event())
    try:
        return await asyncio.wait_for(_answer(store, follower, request.id, waker), wait)
    except asyncio.TimeoutError:
        return await _close(store, request.id, permissions.EXPIRED, "nobody answered in time")
    except asyncio.CancelledError:
        await asyncio.shield(_close(store, request.id, permissions.CANCELLED, "the agent stopped waiting"))
        raise
    finally:
        if _wakers.get(request.id) is waker:
            del _wakers[request.id]


async def _answer(store: Any, follower: EventFollower, request_id: int, waker: asyncio.Event) -> Decision:
    """Look at the events after the request's own (every POLL seconds, or at once when woken)
    until one closes it. A read that fails (the store busy) is tried again at the next look."""
    while True:
        waker.clear()
        try:
            batch = await follower.read()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("reading the answer to permission request %s failed: %s; retrying", request_id, exc)
            batch = []
        if any(e.detail.get("request") == request_id for e in batch):
            request = await permissions.get_request(store, request_id)
            if request.state != permissions.PENDING:
                return Decision.of(request)
        try:
            await asyncio.wait_for(waker.wait(), POLL)
        except asyncio.TimeoutError:
            pass


async def _close(store: Any, request_id: int, state: str, reason: str) -> Decision:
    closed = await permissions.close_request(store, request_id, state, actor=ACTOR, now=time.time(), reason=reason)
    return Decision.of(closed if closed is not None else await permissions.get_request(store, request_id))


async def answer_permission(store: Any, request_id: int, outcome: str, actor: str) -> PermissionRequest:
    """Answer a pending request (``outcome``: allow_once, allow_always, reject_once or
    reject_always) as ``actor``. A request already closed is refused (``qms.errors.Conflict``,
    recorded as a ``permission.refused`` event); an unknown id is ``NotFound``."""
    done = await permissions.answer_request(store, request_id, outcome, actor=actor, now=time.time())
    wake(done.id, every=outcome in permissions.ALWAYS)
    return done


def wake(request_id: int | str, *, every: bool = False) -> None:
    """Tell this process's waiter on ``request_id`` (``every``: all waiters, as an "always"
    answer may close an agent's other requests too) to look at the store now."""
    for rid in (list(_wakers) if every else [int(request_id)]):
        if rid in _wakers:
            _wakers[rid].set()


async def pending_requests(store: Any, agents: Iterable[str] | None = None,
                           limit: int = permissions.MAX_LIST) -> list[PermissionRequest]:
    """The pending requests (of ``agents`` only, if given; the newest ``limit``), oldest
    first; those whose waiter is gone past their time are expired first."""
    await permissions.expire_overdue(store, now=time.time(), actor=ACTOR)
    return await permissions.list_requests(store, agents=agents, limit=limit)
