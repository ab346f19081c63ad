"""The chat route table (``engine_routes``): ordered (match, agent) rows, each with an owner.

The store keeps the table and its authority, one transaction per change, its event in the
same transaction (``route.added|pending|moved|removed|approved|rejected|refused``):

- the operator may add, move, remove, approve and reject any route;
- an agent owns the routes it adds; they always sit below every operator route, whatever
  position it asks for; it may move them only among the agents' routes and may move or
  remove no route it does not own;
- a route added with a ``wide`` reason (the caller decides what is wide: see
  ``crowdtui.dispatch.matching.wide_reason``) is stored ``pending`` until the operator approves it.

Operator routes occupy positions 1..N and agents' routes N+1.. ; every change keeps the
positions dense. Match expressions are stored as given: the caller checks them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qms.errors import InvalidInput, NotFound, PermissionDenied
from qms.event_rows import add_event
from qms.names import OPERATOR, validate_name

if TYPE_CHECKING:
    from qms.store import Store

COLUMNS = "id, match, agent, position, owner, state"


@dataclass(frozen=True)
class RouteRow:
    id: int
    match: str
    agent: str
    position: int
    owner: str  # "operator" or the agent that added it
    state: str  # active | pending | rejected (the last only in a reject's answer)


def _row(r: sqlite3.Row) -> RouteRow:
    return RouteRow(r["id"], r["match"], r["agent"], r["position"], r["owner"], r["state"])


def check_position(position: object) -> int:
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        raise InvalidInput(f"route position {position!r} must be 1 or more (1 is tried first)")
    return position


def check_route_id(route_id: object) -> int:
    if not isinstance(route_id, int) or isinstance(route_id, bool):
        raise InvalidInput(f"route id {route_id!r} must be a whole number; `crowdtui route ls` lists them")
    if not 0 < route_id < 2 ** 63:
        raise NotFound(f"no route {route_id}; `crowdtui route ls` lists them")
    return route_id


async def list_routes(store: "Store") -> list[RouteRow]:
    """Every route in the order tried, pending ones included."""
    return [_row(r) for r in await store.query(f"SELECT {COLUMNS} FROM engine_routes ORDER BY position, id")]


def list_routes_tx(conn: sqlite3.Connection) -> list[RouteRow]:
    """:func:`list_routes` read inside an open transaction (what it holds now)."""
    return [_row(r) for r in conn.execute(f"SELECT {COLUMNS} FROM engine_routes ORDER BY position, id")]


# --- on the writer's thread ----------------------------------------------------------

def _renumber(conn: sqlite3.Connection, ids: list[int]) -> None:
    conn.executemany("UPDATE engine_routes SET position = ? WHERE id = ? AND position != ?",
                     [(i, rid, i) for i, rid in enumerate(ids, start=1)])


def _place(conn: sqlite3.Connection, route_id: int, owner: str, asked: int | None) -> int:
    """Put ``route_id`` at ``asked`` (None: last) within its owner's section -- operator
    routes first, agents' routes after them -- renumber densely; return its position."""
    rows = conn.execute("SELECT id, owner FROM engine_routes WHERE id != ? ORDER BY position, id",
                        (route_id,)).fetchall()
    ops = [r[0] for r in rows if r[1] == OPERATOR]
    agents = [r[0] for r in rows if r[1] != OPERATOR]
    section, offset = (ops, 0) if owner == OPERATOR else (agents, len(ops))
    index = len(section) if asked is None else min(max(asked - offset, 1), len(section) + 1) - 1
    section.insert(index, route_id)
    _renumber(conn, ops + agents)
    return offset + index + 1


def _get(conn: sqlite3.Connection, route_id: int) -> RouteRow:
    row = conn.execute(f"SELECT {COLUMNS} FROM engine_routes WHERE id = ?", (route_id,)).fetchone()
    if row is None:
        raise NotFound(f"no route {route_id}; `crowdtui route ls` lists them")
    return _row(row)


def _not_yours(actor: str, row: RouteRow, action: str) -> str | None:
    if actor == OPERATOR or row.owner == actor:
        return None
    owner = "the operator" if row.owner == OPERATOR else row.owner
    return (f"{actor} may not {action} route {row.id}: it belongs to {owner}; you may {action} only "
            "routes you added (list_routes shows each route's owner)")


def refuse_tx(conn: sqlite3.Connection, store: "Store", actor: str, action: str, subject: str, reason: str,
              **detail: Any) -> None:
    add_event(conn, store, actor, "route.refused", subject, {"action": action, "reason": reason, **detail})


def _delete(conn: sqlite3.Connection, store: "Store", row: RouteRow, actor: str, kind: str) -> None:
    conn.execute("DELETE FROM engine_routes WHERE id = ?", (row.id,))
    ids = [r[0] for r in conn.execute("SELECT id FROM engine_routes ORDER BY owner != ?, position, id",
                                      (OPERATOR,))]
    _renumber(conn, ids)
    add_event(conn, store, actor, kind, str(row.id),
              {"match": row.match, "agent": row.agent, "owner": row.owner, "state": row.state})


def add_route_tx(conn: sqlite3.Connection, store: "Store", match: str, agent: str, *, actor: str,
                 position: int | None, now: float, wide: str | None = None) -> RouteRow:
    """Insert a route owned by ``actor`` and place it (inside an open transaction)."""
    state = "pending" if wide else "active"
    rid = conn.execute(
        "INSERT INTO engine_routes (position, match, agent, created_by, created_at, owner, state) "
        "VALUES (0, ?, ?, ?, ?, ?, ?) RETURNING id", (match, agent, actor, now, actor, state)).fetchone()[0]
    pos = _place(conn, rid, actor, position)
    detail: dict[str, Any] = {"match": match, "agent": agent, "position": pos, "owner": actor, "asked": position}
    if wide:
        detail["wide"] = wide
    add_event(conn, store, actor, "route.pending" if wide else "route.added", str(rid), detail)
    return RouteRow(rid, match, agent, pos, actor, state)


# --- whole changes -------------------------------------------------------------------

async def record_refusal(store: "Store", actor: str, action: str, subject: str, reason: str,
                         **detail: Any) -> None:
    """A refusal decided outside the store (e.g. the caller's tier), recorded as route.refused."""
    await store.write_sync(lambda conn: refuse_tx(conn, store, actor, action, subject, reason, **detail))


async def add_route(store: "Store", match: str, agent: str, *, actor: str, position: int | None = None,
                    now: float, wide: str | None = None) -> RouteRow:
    """Add a route owned by ``actor`` at ``position`` (1-based; None: last of its owner's
    section). An agent's route lands below every operator route; with a ``wide`` reason it
    is stored pending. Only the operator's routes may skip ``wide``: the caller decides."""
    validate_name(agent)
    validate_name(actor)
    if position is not None:
        check_position(position)
    if actor == OPERATOR:
        wide = None
    return await store.write_sync(
        lambda conn: add_route_tx(conn, store, match, agent, actor=actor, position=position, now=now, wide=wide))


async def move_route(store: "Store", route_id: int, position: int, *, actor: str) -> RouteRow:
    """Move a route within its owner's section. Only its owner or the operator may."""
    check_position(position)
    check_route_id(route_id)

    def tx(conn: sqlite3.Connection) -> tuple[RouteRow, str | None]:
        row = _get(conn, route_id)
        refused = _not_yours(actor, row, "move")
        if refused:
            refuse_tx(conn, store, actor, "move", str(route_id), refused, owner=row.owner, to=position)
            return row, refused
        new = _place(conn, route_id, row.owner, position)
        add_event(conn, store, actor, "route.moved", str(route_id),
                  {"from": row.position, "to": new, "asked": position, "owner": row.owner})
        return RouteRow(row.id, row.match, row.agent, new, row.owner, row.state), None

    row, refused = await store.write_sync(tx)
    if refused:
        raise PermissionDenied(refused)
    return row


async def remove_route(store: "Store", route_id: int, *, actor: str) -> RouteRow:
    """Remove a route (pending ones too). Only its owner or the operator may."""
    check_route_id(route_id)

    def tx(conn: sqlite3.Connection) -> tuple[RouteRow, str | None]:
        row = _get(conn, route_id)
        refused = _not_yours(actor, row, "remove")
        if refused:
            refuse_tx(conn, store, actor, "remove", str(route_id), refused, owner=row.owner)
        else:
            _delete(conn, store, row, actor, "route.removed")
        return row, refused

    row, refused = await store.write_sync(tx)
    if refused:
        raise PermissionDenied(refused)
    return row


async def decide_pending(store: "Store", route_id: int, approve: bool, *, actor: str) -> RouteRow:
    """The operator approves (the route becomes active where it stands) or rejects (it is
    removed) an agent's pending route. Anyone else is refused."""
    action = "approve" if approve else "reject"
    check_route_id(route_id)

    def tx(conn: sqlite3.Connection) -> tuple[RouteRow, str | None]:
        row = _get(conn, route_id)
        if actor != OPERATOR:
            refused = f"only the operator may {action} a pending route; {actor} asked to {action} route {route_id}"
            refuse_tx(conn, store, actor, action, str(route_id), refused, owner=row.owner)
            return row, refused
        if row.state != "pending":
            raise InvalidInput(f"route {route_id} is not pending (it is {row.state}); "
                               "`crowdtui route ls` shows which routes wait for approval")
        if approve:
            conn.execute("UPDATE engine_routes SET state = 'active' WHERE id = ?", (route_id,))
            add_event(conn, store, actor, "route.approved", str(route_id),
                      {"match": row.match, "agent": row.agent, "owner": row.owner, "position": row.position})
        else:
            _delete(conn, store, row, actor, "route.rejected")
        return row, None

    row, refused = await store.write_sync(tx)
    if refused:
        raise PermissionDenied(refused)
    return RouteRow(row.id, row.match, row.agent, row.position, row.owner, "active" if approve else "rejected")
