"""The route table in the store: ordered rows of (match expression, agent)."""

from __future__ import annotations

from qms.errors import InvalidInput, NotFound
from qms.names import validate_name

from crowdtui.engine.matching import BadExpression, Route, parse_expression

ROUTE_COLUMNS = "id, match, agent, position"


def _row(r) -> Route:
    return Route(id=r["id"], match=r["match"], agent=r["agent"], position=r["position"])


async def list_routes(store) -> list[Route]:
    rows = await store.query(f"SELECT {ROUTE_COLUMNS} FROM engine_routes ORDER BY position, id", ())
    return [_row(r) for r in rows]


def check_match(match: str) -> str:
    try:
        return str(parse_expression(match))
    except BadExpression as exc:
        raise InvalidInput(str(exc)) from None


async def add_route(store, match: str, agent: str, *, actor: str, position: int | None = None,
                    now: float) -> Route:
    """Add a route at ``position`` (1-based; None: last). Later rows shift down."""
    match = check_match(match)
    validate_name(agent)
    async with store.write() as db:
        count = (await (await db.execute("SELECT COUNT(*) FROM engine_routes")).fetchone())[0]
        pos = count + 1 if position is None else _clamp(position, count + 1)
        await db.execute("UPDATE engine_routes SET position = position + 1 WHERE position >= ?", (pos,))
        cur = await db.execute(
            "INSERT INTO engine_routes (position, match, agent, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (pos, match, agent, actor, now),
        )
        rid = (await cur.fetchone())[0]
        await store.append_event_in(db, actor, "route.added", str(rid),
                                    {"match": match, "agent": agent, "position": pos})
    return Route(rid, match, agent, pos)


def _clamp(position: int, last: int) -> int:
    if not isinstance(position, int) or position < 1:
        raise InvalidInput(f"route position {position!r} must be 1 or more (1 is tried first)")
    return min(position, last)


async def move_route(store, route_id: int, position: int, *, actor: str) -> Route:
    async with store.write() as db:
        row = await (await db.execute(
            f"SELECT {ROUTE_COLUMNS} FROM engine_routes WHERE id = ?", (route_id,))).fetchone()
        if row is None:
            raise NotFound(f"no route {route_id}; `crowdtui route ls` lists them")
        count = (await (await db.execute("SELECT COUNT(*) FROM engine_routes")).fetchone())[0]
        new = _clamp(position, count)
        ids = [r[0] for r in await (await db.execute(
            "SELECT id FROM engine_routes WHERE id != ? ORDER BY position, id", (route_id,))).fetchall()]
        ids.insert(new - 1, route_id)
        for i, rid in enumerate(ids, start=1):
            await db.execute("UPDATE engine_routes SET position = ? WHERE id = ?", (i, rid))
        await store.append_event_in(db, actor, "route.moved", str(route_id),
                                    {"from": row["position"], "to": new})
    return Route(route_id, row["match"], row["agent"], new)


async def remove_route(store, route_id: int, *, actor: str) -> Route:
    async with store.write() as db:
        cur = await db.execute(
            f"DELETE FROM engine_routes WHERE id = ? RETURNING {ROUTE_COLUMNS}", (route_id,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no route {route_id}; `crowdtui route ls` lists them")
        await db.execute("UPDATE engine_routes SET position = position - 1 WHERE position > ?",
                         (row["position"],))
        await store.append_event_in(db, actor, "route.removed", str(route_id),
                                    {"match": row["match"], "agent": row["agent"]})
    return _row(row)
