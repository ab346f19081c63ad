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
string has become a list. The rule language itself (parsing, the canonical text a glob is
matched against) lives below the roster in :mod:`crowdtui.grant_rules`, so the roster
checks a definition's rules with the same parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

from crowdtui.grant_rules import Rule, parse_rules

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
# Agent lifecycle (crowdtui.hub.manage_tools): whatever the grants say, an agent acts only
# on its own descendants, within the spawn and running quotas.
MANAGE_TOOLS = ("list_agents", "start_agent", "stop_agent", "restart_agent", "spawn_agent", "retire_agent")
# Approval delegated down the tree (crowdtui.hub.approval_tools): whatever the grants say, an
# agent answers only its descendants' permission requests, for tools its own grants allow.
APPROVAL_TOOLS = ("pending_permissions", "answer_permission")
_CHANGE_AGENTS = ("!start_agent", "!stop_agent", "!restart_agent", "!spawn_agent", "!retire_agent")
# Served only by `crowdtui serve` (crowdtui.dispatch.mcp_tools), which narrows them further.
DISPATCH_TOOLS = ("reply", "list_routes", "add_route", "move_route", "remove_route",
                "list_tasks", "add_task", "pause_task", "resume_task", "remove_task")
HUB_TOOLS = MESSAGING_TOOLS + DOCUMENT_TOOLS + COORDINATION_TOOLS + MANAGE_TOOLS + APPROVAL_TOOLS
ALL_TOOLS = HUB_TOOLS + DISPATCH_TOOLS

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
# or scheduling at all (reply to a chat stays open to every tier), no starting, stopping,
# spawning or retiring agents (list_agents stays open).
DEEP_TIER_DEFAULT: tuple[str, ...] = (
    ("*", "!observe", "!send_message(to=[*])", "!list_routes", "!list_tasks") + _CHANGE_ROUTING + _CHANGE_AGENTS
)

@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@lru_cache(maxsize=None)
def tier_default(tier: int) -> tuple[Rule, ...]:
    return parse_rules(TIER_DEFAULTS.get(tier, DEEP_TIER_DEFAULT))


def _decide(rules: tuple[Rule, ...], tool: str, args: Mapping[str, Any]) -> Rule | None:
    last = None
    for rule in rules:
        if rule.matches(tool, args):
            last = rule
    return last


_NAMED_CACHE = 1024  # tool names remembered per grant set (the names come from agents: bounded)


def _named(rules: tuple[Rule, ...], tool: str) -> tuple[Rule, ...]:
    """The rules whose tool pattern matches ``tool``, in order."""
    return tuple(rule for rule in rules if rule.matches_name(tool))


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
    # per tool name: (the tier default's rules naming it, this agent's rules naming it); the
    # glob match of every rule against the name was most of a grant check
    _by_name: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def _for(self, tool: str) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        hit = self._by_name.get(tool)
        if hit is None:
            hit = (_named(tier_default(self.tier), tool), _named(self.rules, tool))
            if len(self._by_name) < _NAMED_CACHE:
                self._by_name[tool] = hit
        return hit

    @classmethod
    def of(cls, tier: int, rule_texts: Iterable[str] = ()) -> "Grants":
        return _grants(tier, tuple(rule_texts))

    def check(self, tool: str, args: Mapping[str, Any] | None = None, known: Iterable[str] | None = ALL_TOOLS) -> Decision:
        """May this call go ahead? ``known``: the tools that exist (the server's; None: any)."""
        args = args or {}
        if known is not None and tool not in known:
            return Decision(False, f"unknown tool {tool!r}; call tools/list to see the tools you may call")
        tier_rules, own_rules = self._for(tool)
        default = _decide(tier_rules, tool, args)
        if default is None or not default.allow:
            why = f" (rule {default.text!r})" if default is not None and default.text != "*" else ""
            return Decision(False, f"{tool} is not available at tier {self.tier}{why}; ask your parent or the operator")
        if not self.rules:
            return Decision(True, f"tier {self.tier} default")
        rule = _decide(own_rules, tool, args)
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
        tier_rules, own_rules = self._for(tool)
        if not _visible(tier_rules, tool):
            return False
        return not self.rules or _visible(own_rules, tool)

    def visible_tools(self, tools: Iterable[str] = HUB_TOOLS) -> list[str]:
        return [t for t in tools if self.visible(t)]


@lru_cache(maxsize=1024)
def _grants(tier: int, rule_texts: tuple[str, ...]) -> Grants:
    """Parsed once per (tier, rules): every call of every agent asks for its grants."""
    return Grants(tier=tier, rules=parse_rules(rule_texts))
