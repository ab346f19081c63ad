"""Grants: which hub tools an agent may call, with which arguments.

Two layers, both must allow a call:

1. The tier default (authority comes from depth in the roster tree). Tier 0 may call
   everything; deeper tiers lose tools (see ``TIER_DEFAULTS``). Messaging, document and
   status tools are open to every tier.
2. The definition's ``grants`` rules, ``[!]tool[(param=glob,...)]``: the tool name and
   the parameter values are shell globs; the last rule that matches a call decides,
   and when rules exist but none matches, the call is denied. No rules at all means
   the tier default alone decides. Rules can therefore narrow the tier default but
   never widen it.

Rules are checked against the values the tool will receive: the hub validates the
arguments with the tool's own argument model first (``crowdtui.hub.server``), so a
parameter the call leaves out has its default, ``"01"`` has become ``1`` and a JSON
string has become a list. A parameter named in a rule matches that value written in
one canonical way (:func:`canonical`): ``None`` is the empty string, booleans are
``true``/``false``, numbers are plain decimals (``1.0`` is ``1``), document ids and
types are upper case. The glob is read the same way for that value (``False``, ``no``
or ``0`` for a boolean, ``01`` for a number, ``sop-*`` for a document id). Over a list,
an allow rule matches when every element matches and a deny rule when any element
does; an empty list is matched like an absent value.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

MESSAGING_TOOLS = ("send_message", "get_messages", "mark_messages_read", "discover_agents")
DOCUMENT_TOOLS = (
    "create_document",
    "read_document",
    "list_documents",
    "checkout_document",
    "renew_checkout",
    "checkin_document",
    "cancel_checkout",
    "route_document",
    "review_document",
    "approve_document",
    "reject_document",
    "release_document",
    "close_document",
    "document_history",
    "my_tasks",
)
COORDINATION_TOOLS = ("delegate", "escalate", "observe", "set_status")
# Served only by `crowdtui serve` (crowdtui.engine.mcp_tools), which narrows them further.
ENGINE_TOOLS = ("reply", "list_routes", "add_route", "move_route", "remove_route",
                "list_tasks", "add_task", "pause_task", "resume_task", "remove_task")
HUB_TOOLS = MESSAGING_TOOLS + DOCUMENT_TOOLS + COORDINATION_TOOLS
ALL_TOOLS = HUB_TOOLS + ENGINE_TOOLS

_CHANGE_ROUTING = ("!add_route", "!move_route", "!remove_route", "!add_task", "!pause_task",
                   "!resume_task", "!remove_task")
# Tier defaults, written in the same rule language as the definitions' grants.
# Whatever the grants say, `observe` reaches only the caller's own descendants (children,
# grandchildren...): the tool checks the roster tree (crowdtui.hub.tools) and records a
# refusal as a hub.denied event. Grants can only narrow that further.
TIER_DEFAULTS: dict[int, tuple[str, ...]] = {
    0: ("*",),
    # tier 1: may look at routes and schedules, not change them
    1: ("*",) + _CHANGE_ROUTING,
}
# Tier 2 and deeper: no observing other agents, no broadcasting to everyone, no routing
# or scheduling at all (reply to a chat stays open to every tier).
DEEP_TIER_DEFAULT: tuple[str, ...] = (
    ("*", "!observe", "!send_message(to=[*])", "!list_routes", "!list_tasks") + _CHANGE_ROUTING
)

_RULE = re.compile(
    r"""^\s*(?P<neg>!)?\s*(?P<tool>[A-Za-z0-9_*?\[\]-]+)\s*(?:\((?P<params>.*)\))?\s*$"""
)
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GrantRuleError(ValueError):
    """A grant rule that cannot be parsed."""


@dataclass(frozen=True)
class Rule:
    allow: bool
    tool: str
    params: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def matches_name(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.tool)

    def matches(self, tool: str, args: Mapping[str, Any]) -> bool:
        if not self.matches_name(tool):
            return False
        # deny rules fire on any element of a list, allow rules need every element
        return all(_value_matches(args.get(name), glob, name, any_element=not self.allow)
                   for name, glob in self.params)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


# Parameters the store reads case-insensitively (``sop-001`` is ``SOP-001``).
CASE_INSENSITIVE_PARAMS = frozenset({"doc_id", "doc_type"})
# Boolean words as pydantic reads them (its lax mode), so a rule may say False, no or 0.
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0"})


def canonical(value: Any, name: str = "") -> str:
    """One (non-list) argument value as the text a rule's glob is matched against."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.upper() if name in CASE_INSENSITIVE_PARAMS else value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _number_text(text: str) -> str | None:
    """``01``, ``+1``, ``1.0`` -> ``1``; ``0.50`` -> ``0.5``; None when not a number."""
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        return canonical(float(text))
    except ValueError:
        return None


def _glob_for(value: Any, glob: str, name: str) -> str:
    """The rule's glob written the way :func:`canonical` writes ``value``."""
    if isinstance(value, bool):
        word = glob.strip().lower()
        return "true" if word in _TRUE_WORDS else "false" if word in _FALSE_WORDS else word
    if isinstance(value, (int, float)):
        return _number_text(glob.strip()) or glob
    if isinstance(value, str) and name in CASE_INSENSITIVE_PARAMS:
        return glob.upper()
    return glob


def _value_matches(value: Any, glob: str, name: str = "", any_element: bool = False) -> bool:
    if isinstance(value, (list, tuple)):
        if not value:
            return fnmatch.fnmatchcase("", glob)
        test = any if any_element else all
        return test(_value_matches(v, glob, name) for v in value)
    return fnmatch.fnmatchcase(canonical(value, name), _glob_for(value, glob, name))


def parse_rule(text: str) -> Rule:
    m = _RULE.match(text or "")
    if not m:
        raise GrantRuleError(
            f"grant rule {text!r} is not [!]tool[(param=glob,...)]; e.g. '!observe' or "
            "'send_message(to=lead)'"
        )
    params: list[tuple[str, str]] = []
    if m.group("params") is not None:
        body = m.group("params").strip()
        if not body:
            raise GrantRuleError(f"grant rule {text!r} has empty parentheses; name a parameter or drop them")
        for part in body.split(","):
            name, sep, glob = part.partition("=")
            name, glob = name.strip(), glob.strip()
            if not sep or not _PARAM_NAME.match(name):
                raise GrantRuleError(f"grant rule {text!r}: {part.strip()!r} is not param=glob")
            params.append((name, glob))
    return Rule(allow=not m.group("neg"), tool=m.group("tool"), params=tuple(params), text=text.strip())


def parse_rules(texts: Iterable[str]) -> tuple[Rule, ...]:
    return tuple(parse_rule(t) for t in texts)


def tier_default(tier: int) -> tuple[Rule, ...]:
    return parse_rules(TIER_DEFAULTS.get(tier, DEEP_TIER_DEFAULT))


def _decide(rules: tuple[Rule, ...], tool: str, args: Mapping[str, Any]) -> Rule | None:
    last = None
    for rule in rules:
        if rule.matches(tool, args):
            last = rule
    return last


def _visible(rules: tuple[Rule, ...], tool: str) -> bool:
    """Could some call of ``tool`` be allowed by ``rules``?"""
    visible = False
    for rule in rules:
        if not rule.matches_name(tool):
            continue
        if not rule.params:
            visible = rule.allow
        elif rule.allow:
            visible = True
    return visible


@dataclass(frozen=True)
class Grants:
    """What one agent may call: its tier default narrowed by its own rules."""

    tier: int
    rules: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, tier: int, rule_texts: Iterable[str] = ()) -> "Grants":
        return cls(tier=tier, rules=parse_rules(rule_texts))

    def check(self, tool: str, args: Mapping[str, Any] | None = None, known: Iterable[str] | None = ALL_TOOLS) -> Decision:
        """May this call go ahead? ``known``: the tools that exist (the server's; None: any)."""
        args = args or {}
        if known is not None and tool not in known:
            return Decision(False, f"unknown tool {tool!r}; call tools/list to see the tools you may call")
        default = _decide(tier_default(self.tier), tool, args)
        if default is None or not default.allow:
            why = f" (rule {default.text!r})" if default is not None and default.text != "*" else ""
            return Decision(False, f"{tool} is not available at tier {self.tier}{why}; ask your parent or the operator")
        if not self.rules:
            return Decision(True, f"tier {self.tier} default")
        rule = _decide(self.rules, tool, args)
        if rule is None:
            return Decision(False, f"no grant rule of yours allows {tool} with these arguments; ask the operator to extend your grants")
        if not rule.allow:
            return Decision(False, f"{tool} is denied by your grant rule {rule.text!r}; ask the operator")
        return Decision(True, f"grant rule {rule.text!r}")

    def refuse_name(self, tool: str, known: Iterable[str] | None = ALL_TOOLS) -> Decision | None:
        """The refusal that holds whatever the arguments (an unknown tool, or one none of
        whose calls this agent may make); None when some call of ``tool`` may be allowed."""
        if (known is not None and tool not in known) or not self.visible(tool):
            decision = self.check(tool, {}, known=known)
            if decision.allowed:  # visible() is stricter than any one call; keep its answer
                return Decision(False, f"no grant rule of yours allows {tool}; ask the operator to extend your grants")
            return decision
        return None

    def visible(self, tool: str) -> bool:
        """Could some call of ``tool`` be allowed (so it belongs in this agent's tools/list)?"""
        if not _visible(tier_default(self.tier), tool):
            return False
        return not self.rules or _visible(self.rules, tool)

    def visible_tools(self, tools: Iterable[str] = HUB_TOOLS) -> list[str]:
        return [t for t in tools if self.visible(t)]
