"""The approval queue in the operator's chats: requests announced there, answered from there.

crowd.toml names the chats where the operator speaks::

    [approvals]
    operator_chats = ["platform=telegram chat=telegram:4242 sender=4242"]

Each entry is a match expression (the routes' language, :mod:`crowdtui.dispatch.matching`)
that must pin one platform and one chat or room, and should pin the sender where others
share the chat. A message that matches one and starts with an approval command is the
operator's, whatever the routes say:

- ``/allow ID`` / ``/allow ID always``, ``/reject ID`` / ``/reject ID always``: answer
  request ID (in the routing transaction: :func:`qms.permissions.answer_tx`); answered_by is
  ``operator`` and the event names the chat;
- ``/approvals``: the requests waiting now.

The same commands from any other chat are refused (told to the chat, recorded with the
message). Each new request is announced to every operator chat with a literal ``chat=``
(:class:`Announcer`, following the store's ``permission.requested`` events).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Iterable

from qms import outbound, permissions
from qms.errors import InvalidInput
from qms.follow import EventFollower
from qms.names import DISPATCH, OPERATOR

from crowdtui.dispatch.matching import BadExpression, Decision, Expression, Incoming, literal, parse_expression, \
    wide_reason

VERBS = ("allow", "reject", "approvals")
MAX_LISTED = 20  # requests /approvals names at most
USAGE = "answer with /allow ID, /allow ID always, /reject ID or /reject ID always; /approvals lists them"


def operator_chats(section: Any) -> tuple[Expression, ...]:
    """``[approvals] operator_chats`` of crowd.toml, parsed; each must be narrow."""
    texts = (section or {}).get("operator_chats", []) if isinstance(section, dict) else []
    if isinstance(texts, str) or not isinstance(texts, list):
        raise InvalidInput("[approvals] operator_chats in crowd.toml must be a list of match expressions "
                           "like \"platform=telegram chat=telegram:4242 sender=4242\"")
    out = []
    for text in texts:
        try:
            expression = parse_expression(text)
        except BadExpression as exc:
            raise InvalidInput(f"[approvals] operator_chats: {exc}") from None
        why = wide_reason(expression)
        if why is not None:
            raise InvalidInput(f"[approvals] operator_chats entry {text!r} is too wide: {why}")
        out.append(expression)
    return tuple(out)


def announce_chats(expressions: Iterable[Expression]) -> list[str]:
    """The chats announcements go to: each operator entry's literal ``chat=`` value."""
    chats = []
    for e in expressions:
        for t in e.terms:
            value = literal(t.pattern) if t.key == "chat" else None
            if value and value not in chats:
                chats.append(value)
    return chats


def decide_command(msg: Incoming, expressions: Iterable[Expression]) -> Decision | None:
    """The decision for an approval command (None: not one, route the message as usual)."""
    verb = msg.verb
    text = msg.text.strip()
    if verb not in VERBS or text.split(None, 1)[0].split("@", 1)[0].lower() != f"/{verb}":
        return None
    fields = msg.fields()
    if not any(e.matches(fields) for e in expressions):
        return Decision("error", reason="only the operator's chats answer permission requests "
                                        "(crowd.toml [approvals] operator_chats)")
    return Decision("command", agent=None, command=f"approval:{verb}", extra={"words": text.split()[1:4]})


def command_tx(conn: sqlite3.Connection, store: Any, d: Decision, chat: str, now: float,
               after: list | None = None) -> str:
    """Carry out an operator's approval command inside the routing transaction; the reply.
    ``after`` gets the hook that wakes a waiter in this process once it is committed."""
    verb = (d.command or "").split(":", 1)[1]
    words = [str(w).lower() for w in d.extra.get("words", [])]
    if verb == "approvals":
        return listing_tx(conn, now)
    if not words or len(words) > 2 or (len(words) == 2 and words[1] != "always"):
        return USAGE
    try:
        request_id = permissions.validate_request_id(words[0])
    except InvalidInput as exc:
        return f"{exc}; {USAGE}"
    outcome = f"{verb}_{'always' if len(words) == 2 else 'once'}"
    via = {"via": "chat", "chat": chat}
    result = permissions.answer_tx(conn, store, request_id, outcome, actor=OPERATOR, now=now, extra=via)
    if isinstance(result, str):
        permissions.refused_tx(conn, store, request_id, outcome, actor=OPERATOR, reason=result, extra=via)
        return result
    if after is not None:
        after.append((_wake_always if len(words) == 2 else _wake, str(result.id)))
    rule = f"; {result.agent}'s {result.tool} requests are {verb}ed from now on" if len(words) == 2 else ""
    return f"request {result.id} of {result.agent} ({result.tool}): {outcome}{rule}"


async def _wake(request_id: str) -> None:
    from crowdtui.hub.approvals import wake

    wake(request_id)


async def _wake_always(request_id: str) -> None:
    from crowdtui.hub.approvals import wake

    wake(request_id, every=True)


def listing_tx(conn: sqlite3.Connection, now: float) -> str:
    requests = permissions.pending_tx(conn, now, MAX_LISTED + 1)
    if not requests:
        return "no permission request waits"
    lines = [f"{r.id}: {r.agent} asks permission for {r.tool}: {r.title}" for r in requests[:MAX_LISTED]]
    if len(requests) > MAX_LISTED:
        lines.append("… and more (`crowdtui approvals ls` shows them all)")
    return "\n".join(lines + [USAGE])


def announcement(request: permissions.PermissionRequest) -> str:
    diff = f" ({request.diff.count(chr(10)) + 1} lines of diff)" if request.diff else ""
    always = " or /allow {id} always" if permissions.ALLOW_ALWAYS in request.options else ""
    return (f"{request.agent} asks permission for {request.tool}: {request.title}{diff}\n"
            f"request {request.id}: /allow {request.id}{always.format(id=request.id)}, /reject {request.id}")


class Announcer:
    """Follows ``permission.requested`` and queues one announcement per operator chat for each
    request still pending (one a rule answered at once is not announced)."""

    def __init__(self, store: Any, chats: list[str], *, now=time.time, wake=lambda: None,
                 interval: float = 0.5) -> None:
        self.store = store
        self.chats = chats
        self.now = now
        self.wake = wake
        self.follower = EventFollower(store, kinds="permission.requested", interval=interval)

    async def start(self) -> None:
        await self.follower.start()  # from now on: a restart does not repeat old announcements

    async def announce(self, events) -> int:
        queued = 0
        for event in events:
            try:
                request = await permissions.get_request(self.store, event.detail.get("request"))
            except Exception:
                continue
            if request.state != permissions.PENDING:
                continue
            text = announcement(request)
            for chat in self.chats:
                await outbound.enqueue(self.store, chat=chat, text=text, agent=DISPATCH, now=self.now())
                queued += 1
        if queued:
            self.wake()
        return queued

    async def run(self) -> None:
        await self.start()
        async for batch in self.follower:
            await self.announce(batch)
