"""The route table in the store: ordered rows of (match expression, agent), each with an owner.

Authority (one home for it; the CLI, the console and the agents' MCP tools all come here):

- ``actor == "operator"`` may add, move, remove, approve and reject any route.
- An agent owns the routes it adds. They always sit below every operator route, whatever
  position it asks for; it may move them only among the agents' routes and may move or
  remove no route it does not own.
- An agent's *wide* route (:func:`crowdtui.engine.matching.wide_reason`) is stored
  ``pending``: listed, not used for routing, until the operator approves it.

Operator routes occupy positions 1..N and agents' routes N+1.. ; every change keeps the
positions dense. Every change and every refusal is an event in the same transaction
(``route.added|pending|moved|removed|approved|rejected|refused``).
"""

from __future__ import annotations

from qms.errors import InvalidInput, NotFound, PermissionDenied
from qms.names import OPERATOR, validate_name

from crowdtui.engine.matching import BadExpression, Route, parse_expression, wide_reason

ROUTE_COLUMNS = "id, match, agent, position, owner, state"


def _row(r) -> Route:
    return Route(id=r["id"], match=r["match"], agent=r["agent"], position=r["position"],
                 owner=r["owner"], state=r["state"])


async def list_routes(store) -> list[Route]:
    """Every route in the order tried, pending ones included (matching skips them)."""
    rows = await store.query(f"SELECT {ROUTE_COLUMNS} FROM engine_routes ORDER BY position, id", ())
    return [_row(r) for r in rows]


def check_match(match: str) -> str:
    try:
        return str(parse_expression(match))
    except BadExpression as exc:
        raise InvalidInput(str(exc)) from None


def _check_position(position) -> None:
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        raise InvalidInput(f"route position {position!r} must be 1 or more (1 is tried first)")


async def _place(db, route_id: int, owner: str, asked: int | None) -> int:
    """Put ``route_id`` at ``asked`` (None: last) within its owner's section -- operator
    routes first, agents' routes after them -- renumber densely; return its position."""
    rows = await (await db.execute(
        "SELECT id, owner FROM engine_routes WHERE id != ? ORDER BY position, id", (route_id,))).fetchall()
    ops = [r[0] for r in rows if r[1] == OPERATOR]
    agents = [r[0] for r in rows if r[1] != OPERATOR]
    section, offset = (ops, 0) if owner == OPERATOR else (agents, len(ops))
    index = len(section) if asked is None else min(max(asked - offset, 1), len(section) + 1) - 1
    section.insert(index, route_id)
    await _renumber(db, ops + agents)
    return offset + index + 1


async def _renumber(db, ids: list[int]) -> None:
    for i, rid in enumerate(ids, start=1):
        await db.execute("UPDATE engine_routes SET position = ? WHERE id = ? AND position != ?", (i, rid, i))


async def _refuse_in(store, db, actor: str, action: str, subject: str, reason: str, **detail) -> None:
    await store.append_event_in(db, actor, "route.refused", subject, {"action": action, "reason": reason, **detail})


async def record_refusal(store, actor: str, action: str, subject: str, reason: str, **detail) -> None:
    """A refusal decided outside this module (e.g. the caller's tier), recorded as route.refused."""
    async with store.write() as db:
        await _refuse_in(store, db, actor, action, subject, reason, **detail)


async def add_route(store, match: str, agent: str, *, actor: str, position: int | None = None,
                    now: float) -> Route:
    """Add a route owned by ``actor`` at ``position`` (1-based, 1 is tried first; None: last
    of its owner's section). An agent's route lands below every operator route; if its
    match is wide it is stored pending (see the module docstring)."""
    match = check_match(match)
    validate_name(agent)
    validate_name(actor)
    if position is not None:
        _check_position(position)
    wide = None if actor == OPERATOR else wide_reason(parse_expression(match))
    state = "pending" if wide else "active"
    async with store.write() as db:
        cur = await db.execute(
            "INSERT INTO engine_routes (position, match, agent, created_by, created_at, owner, state) "
            "VALUES (0, ?, ?, ?, ?, ?, ?) RETURNING id",
            (match, agent, actor, now, actor, state),
        )
        rid = (await cur.fetchone())[0]
        pos = await _place(db, rid, actor, position)
        detail = {"match": match, "agent": agent, "position": pos, "owner": actor, "asked": position}
        if wide:
            detail["wide"] = wide
        await store.append_event_in(db, actor, "route.pending" if wide else "route.added", str(rid), detail)
    return Route(rid, match, agent, pos, actor, state)


def _not_yours(actor: str, row, action: str) -> str | None:
    if actor == OPERATOR or row["owner"] == actor:
        return None
    owner = "the operator" if row["owner"] == OPERATOR else row["owner"]
    return (f"{actor} may not {action} route {row['id']}: it belongs to {owner}; you may {action} only "
            "routes you added (list_routes shows each route's owner)")


async def _get_in(db, route_id: int):
    if not isinstance(route_id, int) or isinstance(route_id, bool):
        raise InvalidInput(f"route id {route_id!r} must be a whole number; `crowdtui route ls` lists them")
    if not 0 < route_id < 2 ** 63:
        raise NotFound(f"no route {route_id}; `crowdtui route ls` lists them")
    row = await (await db.execute(f"SELECT {ROUTE_COLUMNS} FROM engine_routes WHERE id = ?",
                                  (route_id,))).fetchone()
    if row is None:
        raise NotFound(f"no route {route_id}; `crowdtui route ls` lists them")
    return row


async def move_route(store, route_id: int, position: int, *, actor: str) -> Route:
    """Move a route within its owner's section (an agent's route never goes above an
    operator route). Only its owner or the operator may move it."""
    _check_position(position)
    async with store.write() as db:
        row = await _get_in(db, route_id)
        refused = _not_yours(actor, row, "move")
        if refused:
            await _refuse_in(store, db, actor, "move", str(route_id), refused, owner=row["owner"], to=position)
        else:
            new = await _place(db, route_id, row["owner"], position)
            await store.append_event_in(db, actor, "route.moved", str(route_id),
                                        {"from": row["position"], "to": new, "asked": position,
                                         "owner": row["owner"]})
    if refused:
        raise PermissionDenied(refused)
    return Route(route_id, row["match"], row["agent"], new, row["owner"], row["state"])


async def remove_route(store, route_id: int, *, actor: str) -> Route:
    """Remove a route (pending ones too). Only its owner or the operator may."""
    async with store.write() as db:
        row = await _get_in(db, route_id)
        refused = _not_yours(actor, row, "remove")
        if refused:
            await _refuse_in(store, db, actor, "remove", str(route_id), refused, owner=row["owner"])
        else:
            await _delete_in(store, db, row, actor, "route.removed")
    if refused:
        raise PermissionDenied(refused)
    return _row(row)


async def _delete_in(store, db, row, actor: str, kind: str) -> None:
    await db.execute("DELETE FROM engine_routes WHERE id = ?", (row["id"],))
    ids = [r[0] for r in await (await db.execute(
        "SELECT id FROM engine_routes ORDER BY owner != ?, position, id", (OPERATOR,))).fetchall()]
    await _renumber(db, ids)
    await store.append_event_in(db, actor, kind, str(row["id"]),
                                {"match": row["match"], "agent": row["agent"], "owner": row["owner"],
                                 "state": row["state"]})


async def decide_pending(store, route_id: int, approve: bool, *, actor: str) -> Route:
    """The operator approves (the route becomes active where it stands) or rejects (it is
    removed) an agent's pending route. Anyone else is refused."""
    action = "approve" if approve else "reject"
    async with store.write() as db:
        row = await _get_in(db, route_id)
        refused = None
        if actor != OPERATOR:
            refused = f"only the operator may {action} a pending route; {actor} asked to {action} route {route_id}"
            await _refuse_in(store, db, actor, action, str(route_id), refused, owner=row["owner"])
        elif row["state"] != "pending":
            raise InvalidInput(f"route {route_id} is not pending (it is {row['state']}); "
                               "`crowdtui route ls` shows which routes wait for approval")
        elif approve:
            await db.execute("UPDATE engine_routes SET state = 'active' WHERE id = ?", (route_id,))
            await store.append_event_in(db, actor, "route.approved", str(route_id),
                                        {"match": row["match"], "agent": row["agent"], "owner": row["owner"],
                                         "position": row["position"]})
        else:
            await _delete_in(store, db, row, actor, "route.rejected")
    if refused:
        raise PermissionDenied(refused)
    state = "active" if approve else "rejected"
    return Route(route_id, row["match"], row["agent"], row["position"], row["owner"], state)
