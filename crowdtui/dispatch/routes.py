"""Dispatch's side of the route table: checking match expressions and what is *wide*.

The table, its authority and its events live in the store (:mod:`qms.routes`: who may add,
move, remove, approve and reject which route, operator routes above agents' routes, dense
positions). The CLI, the console and the agents' MCP tools all come here; this module
checks the expression (:mod:`crowdtui.dispatch.matching`), decides whether an agent's route
is wide (:func:`crowdtui.dispatch.matching.wide_reason`; such a route waits ``pending`` for
the operator) and hands rows out as :class:`~crowdtui.dispatch.matching.Route`.
"""

from __future__ import annotations

from qms import routes as table
from qms.errors import InvalidInput
from qms.names import OPERATOR
from qms.routes import RouteRow

from crowdtui.dispatch.matching import BadExpression, Route, parse_expression, wide_reason

__all__ = ["add_route", "check_match", "decide_pending", "list_routes", "list_routes_tx", "move_route", "record_refusal",
           "remove_route"]


def _route(r: RouteRow) -> Route:
    return Route(id=r.id, match=r.match, agent=r.agent, position=r.position, owner=r.owner, state=r.state)


async def list_routes(store) -> list[Route]:
    """Every route in the order tried, pending ones included (matching skips them)."""
    return [_route(r) for r in await table.list_routes(store)]


def list_routes_tx(conn) -> list[Route]:
    """:func:`list_routes` inside an open transaction (the writer's thread)."""
    return [_route(r) for r in table.list_routes_tx(conn)]


def check_match(match: str) -> str:
    try:
        return str(parse_expression(match))
    except BadExpression as exc:
        raise InvalidInput(str(exc)) from None


async def record_refusal(store, actor: str, action: str, subject: str, reason: str, **detail) -> None:
    """A refusal decided outside the route table (e.g. the caller's tier), recorded as route.refused."""
    await table.record_refusal(store, actor, action, subject, reason, **detail)


async def add_route(store, match: str, agent: str, *, actor: str, position: int | None = None,
                    now: float) -> Route:
    """Add a route owned by ``actor`` at ``position`` (1-based, 1 is tried first; None: last
    of its owner's section). An agent's wide route is stored pending."""
    match = check_match(match)
    wide = None if actor == OPERATOR else wide_reason(parse_expression(match))
    return _route(await table.add_route(store, match, agent, actor=actor, position=position, now=now, wide=wide))


async def move_route(store, route_id: int, position: int, *, actor: str) -> Route:
    """Move a route within its owner's section. Only its owner or the operator may."""
    return _route(await table.move_route(store, route_id, position, actor=actor))


async def remove_route(store, route_id: int, *, actor: str) -> Route:
    """Remove a route (pending ones too). Only its owner or the operator may."""
    return _route(await table.remove_route(store, route_id, actor=actor))


async def decide_pending(store, route_id: int, approve: bool, *, actor: str) -> Route:
    """The operator approves or rejects an agent's pending route; anyone else is refused."""
    return _route(await table.decide_pending(store, route_id, approve, actor=actor))
