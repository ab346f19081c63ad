"""Route matching: which agent a chat message goes to. Pure: no store, no I/O.

A route is a match expression and a target agent. The expression is glob terms
ANDed over the message's fields::

    platform=telegram room=-100* sender=*     # sender present
    platform=local chat=local:alice verb=     # no verb

``key=*`` means the field is present (non-empty), ``key=`` means it is absent,
anything else is a case-sensitive glob (``*``, ``?``, ``[...]``). A lone ``*``
matches every message. Values with spaces are quoted: ``sender="Ann Lee"``.

Every route has an owner: ``operator`` (added from the CLI or the console) or the
agent that added it through its MCP tools. Only *active* routes take part; an
agent's wide route (see :func:`wide_reason`) is *pending* until the operator
approves it.

The operator's routes are the door: a message that no active operator route
accepts is held for the operator (onboarding), whatever agents' routes exist, so
no agent can let an unknown sender in. Agents' routes always sit below the
operator's and only pass on what the routes already give their owner: after the
operator route picked agent A, the first active route *owned by A* that matches
(if any) picks the next agent, and so on down the chain (each agent once). For a
message the door accepts, the target is chosen in this order: a dispatch command
(``/new``, ``/who``, ``/stop``), an ``@name text`` prefix (that agent, this message
only), a bare ``@name`` (makes ``name`` the chat's sticky agent), the chat's sticky
agent, then the route chain.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Literal

from qms.names import NAME_RE, OPERATOR

FIELDS = ("platform", "room", "chat", "sender", "verb")
COMMANDS = ("new", "who", "stop")
MAX_EXPRESSION = 1000

_VERB = re.compile(r"/([A-Za-z][A-Za-z0-9_-]{0,31})(?:@\S+)?(?=\s|$)")
_MENTION = re.compile(rf"@({NAME_RE.pattern})(?=\s|$)")


class BadExpression(ValueError):
    """A match expression that cannot be parsed; ``str()`` says what to fix."""


@dataclass(frozen=True)
class Term:
    key: str
    pattern: str  # "*" present, "" absent, else a glob

    def matches(self, value: str | None) -> bool:
        if self.pattern == "":
            return not value
        if not value:
            return False
        if self.pattern == "*":
            return True
        return fnmatch.fnmatchcase(value, self.pattern)

    def __str__(self) -> str:
        value = self.pattern
        if value and any(c.isspace() or c in "\"'" for c in value):
            value = shlex.quote(value)
        return f"{self.key}={value}"


@dataclass(frozen=True)
class Expression:
    """A parsed match expression: every term must hold."""

    terms: tuple[Term, ...]

    def matches(self, fields: dict[str, str | None]) -> bool:
        return all(t.matches(fields.get(t.key)) for t in self.terms)

    def __str__(self) -> str:
        return " ".join(str(t) for t in self.terms) or "*"


def parse_expression(text: str) -> Expression:
    """Parse ``key=glob ...``; raise BadExpression with a one-line fix otherwise."""
    if not isinstance(text, str):
        raise BadExpression("a match expression must be text like 'platform=local chat=*'")
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Expression:
    if len(text) > MAX_EXPRESSION:
        raise BadExpression(f"match expression is longer than {MAX_EXPRESSION} characters; shorten it")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text if c not in " \t"):
        raise BadExpression("match expression contains control characters; use plain text")
    stripped = text.strip()
    if not stripped:
        raise BadExpression("empty match expression; use '*' to match every message")
    if stripped == "*":
        return Expression(())
    try:
        words = shlex.split(stripped)
    except ValueError as exc:
        raise BadExpression(f"cannot parse match expression {text!r} ({exc}); check the quotes") from None
    terms = []
    for word in words:
        key, eq, pattern = word.partition("=")
        if not eq:
            raise BadExpression(
                f"term {word!r} has no '='; write key=glob with key one of {', '.join(FIELDS)}"
            )
        if key not in FIELDS:
            raise BadExpression(f"unknown key {key!r} in {word!r}; keys are {', '.join(FIELDS)}")
        terms.append(Term(key, pattern))
    return Expression(tuple(terms))


def glob_escape(value: str) -> str:
    """A glob that matches exactly ``value`` (for routes made from a chat id)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in value)


def literal(pattern: str) -> str | None:
    """The one value glob ``pattern`` matches, or None when it matches more than one
    (``*``, ``?``, a set like ``[ab]``) or means present/absent (``*``, empty).
    A one-character set such as ``[*]`` (what :func:`glob_escape` writes) is literal."""
    if pattern in ("", "*"):
        return None
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c in "*?":
            return None
        if c == "[":
            if i + 2 < len(pattern) and pattern[i + 2] == "]" and pattern[i + 1] != "!":
                out.append(pattern[i + 1])
                i += 3
                continue
            return None
        out.append(c)
        i += 1
    return "".join(out)


def wide_reason(expression: Expression) -> str | None:
    """Why a match is *wide* (None: it is narrow).

    Narrow means it pins one platform AND one room or one chat: a ``platform=`` term and
    a ``room=`` or ``chat=`` term whose values are literal (no ``*``, ``?`` or ``[..]``
    set; see :func:`literal`). Everything else is wide -- ``*``, ``platform=local``,
    ``chat=local:*``, ``sender=ann`` across rooms. Sender and verb terms only narrow a
    match further; they never make it narrow on their own. An agent's wide route waits
    for the operator's approval.
    """
    def pinned(key: str) -> bool:
        return any(t.key == key and literal(t.pattern) is not None for t in expression.terms)

    if not pinned("platform"):
        return "it does not pin one platform (platform=NAME, no glob characters)"
    if not (pinned("room") or pinned("chat")):
        return "it does not pin one room or chat (room=ID or chat=ID, no glob characters)"
    return None


@dataclass(frozen=True)
class Route:
    id: int
    match: str
    agent: str
    position: int = 0
    owner: str = OPERATOR  # "operator" or the agent that added it
    state: str = "active"  # "active" or "pending" (an agent's wide route, not yet approved)

    @property
    def expression(self) -> Expression:
        return parse_expression(self.match)

    @property
    def active(self) -> bool:
        return self.state == "active"


@dataclass(frozen=True)
class Incoming:
    """The routable parts of one chat message."""

    chat: str
    text: str = ""
    platform: str | None = None
    room: str | None = None
    sender: str | None = None

    @property
    def verb(self) -> str | None:
        """The slash command the text starts with (``/help foo`` -> ``help``), else None."""
        m = _VERB.match(self.text.lstrip())
        return m.group(1).lower() if m else None

    def fields(self) -> dict[str, str | None]:
        return {
            "platform": self.platform,
            "room": self.room,
            "chat": self.chat,
            "sender": self.sender,
            "verb": self.verb,
        }


Kind = Literal["deliver", "command", "sticky", "hold", "error"]


@dataclass(frozen=True)
class Decision:
    """What to do with one message.

    - ``deliver``: put ``text`` in ``agent``'s inbox (``how`` says why: direct, sticky, route).
    - ``command``: run ``command`` (new|who|stop) for the chat; ``agent`` is the current one.
    - ``sticky``: make ``agent`` the chat's sticky agent.
    - ``hold``: no route accepts the message; hold it for the operator.
    - ``error``: tell the chat ``reason`` (e.g. an unknown ``@name``); nothing delivered.
    """

    kind: Kind
    agent: str | None = None
    text: str = ""
    how: str = ""
    command: str | None = None
    route_id: int | None = None
    reason: str = ""
    extra: dict = field(default_factory=dict)


def first_match(routes: Iterable[Route], fields: dict[str, str | None], *,
                owner: str | None = None) -> Route | None:
    """The first active route (of ``owner``, if given) whose expression holds."""
    for route in sorted(routes, key=lambda r: (r.position, r.id)):
        if route.active and (owner is None or route.owner == owner) and route.expression.matches(fields):
            return route
    return None


def choose_route(routes: Iterable[Route], fields: dict[str, str | None]) -> Route | None:
    """The route that picks the agent: the first operator route that accepts the message
    (None: nobody let it in, hold it), passed on through its target's own routes."""
    routes = list(routes)
    route = first_match(routes, fields, owner=OPERATOR)
    seen = {OPERATOR}
    while route is not None:
        seen.add(route.agent)
        onward = first_match(routes, fields, owner=route.agent)
        if onward is None or onward.agent in seen:  # each agent once: no loops
            return route
        route = onward
    return None


def decide(
    msg: Incoming,
    routes: Iterable[Route],
    *,
    sticky: str | None = None,
    agents: Iterable[str] | None = None,
) -> Decision:
    """Choose what to do with ``msg``. ``agents``: names that may be addressed (None: any)."""
    known = None if agents is None else set(agents)
    route = choose_route(routes, msg.fields())
    if route is None:
        return Decision("hold", reason="no operator route accepts this message")
    current = sticky if sticky and (known is None or sticky in known) else None
    default = current or route.agent
    text = msg.text.strip()

    verb = msg.verb
    if verb in COMMANDS and text.split(None, 1)[0].split("@", 1)[0].lower() == f"/{verb}":
        return Decision("command", agent=default, command=verb, route_id=route.id,
                        extra={"route_agent": route.agent})

    m = _MENTION.match(text)
    if m:
        name = m.group(1)
        rest = text[m.end():].strip()
        if known is not None and name not in known:
            return Decision("error", agent=name, reason=f"no agent named {name}; /who shows who is here")
        if not rest:
            return Decision("sticky", agent=name, how="sticky", route_id=route.id)
        return Decision("deliver", agent=name, text=rest, how="direct", route_id=route.id)

    if current:
        return Decision("deliver", agent=current, text=msg.text, how="sticky", route_id=route.id)
    return Decision("deliver", agent=route.agent, text=msg.text, how="route", route_id=route.id)
