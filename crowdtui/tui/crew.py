"""The crew as the console shows it: one row per agent, merged from the store's
registry, the roster, the containers and their stats; and the order rows appear in.

Plain Python (no Textual) so the merge and the ordering are easy to test and reuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from qms.names import OPERATOR

#: what a display state means for the operator, in the order they matter
RUNNING_STATES = {"running", "restarting", "starting", "paused"}
CRASHED_STATES = {"crashed", "dead", "failed", "oom", "error"}
WAITING_STATUSES = {"waiting", "blocked"}


@dataclass(frozen=True)
class AgentRow:
    """One line of the agent list."""

    name: str
    tier: int = 0
    path: str = ""
    parent: str | None = None
    state: str = "stopped"  # running | waiting for input | working | stopped | crashed
    status: str = ""  # the agent's own set_status value
    note: str = ""
    unread: int = 0
    cpu: float | None = None  # percent of one core
    memory: int | None = None  # bytes
    container_id: str | None = None
    defined: bool = True  # present in the roster on disk
    engine: str = "local"  # the engine its container runs on (crowd.toml [engines.NAME])

    @property
    def needs_operator(self) -> bool:
        return self.state in ("asks permission", "waiting for input", "crashed", "crash-looping", "stuck")

    @property
    def is_operator(self) -> bool:
        return self.name == OPERATOR

    @property
    def running(self) -> bool:
        return self.state in ("running", "waiting for input", "working")


def display_state(container_state: str | None, status: str | None) -> str:
    """The one word the list shows, from the container's state and the agent's status."""
    cs = (container_state or "").lower()
    st = (status or "").lower()
    if cs == "unreachable":  # its engine does not answer (crowdtui.runtime.state)
        return "unreachable"
    if cs in CRASHED_STATES:
        return "crashed"
    if cs not in RUNNING_STATES:
        return "stopped"
    if st in WAITING_STATUSES:
        return "waiting for input"
    if st == "working":
        return "working"
    return "running"


def supervision(agent: Any) -> tuple[str, str] | None:
    """What the hub's supervisor says of an agent (registry state and detail), as (state,
    note): ``restarting (2/5)`` with the last exit, ``crash-looping``, ``stuck`` with why."""
    import json

    state = str(_get(agent, "state", "") or "")
    try:
        detail = json.loads(_get(agent, "state_detail", "") or "{}")
    except ValueError:
        detail = {}
    if not isinstance(detail, dict):
        return None
    last = f"last exit: {detail.get('last_exit')}" if detail.get("last_exit") else ""
    if state == "restarting":
        return f"restarting ({detail.get('attempt', '?')}/{detail.get('limit', '?')})", last
    if state == "crash-looping":
        return "crash-looping", last
    if state == "running" and detail.get("stuck"):
        return "stuck", f"stuck: {detail['stuck']}"
    return None


def _path_key(row: AgentRow) -> tuple:
    parts = tuple(p for p in (row.path or row.name).split("/") if p)
    return parts or (row.name,)


def order_rows(rows: Iterable[AgentRow]) -> list[AgentRow]:
    """Operator first, then agents that need the operator, then the tree in folder order."""
    rows = list(rows)
    tree = sorted(rows, key=_path_key)
    rank = {r.name: i for i, r in enumerate(tree)}
    return sorted(
        rows,
        key=lambda r: (0 if r.is_operator else 1 if r.needs_operator else 2, rank[r.name]),
    )


def _get(obj: Any, name: str, default=None):
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def merge_rows(
    agents: Iterable[Any],
    *,
    roster: Mapping[str, Any] | None = None,
    containers: Mapping[str, Any] | None = None,
    unread: Mapping[str, int] | None = None,
    stats: Mapping[str, Any] | None = None,
    attention: Mapping[str, str] | None = None,
    permissions: Mapping[str, int] | None = None,
) -> list[AgentRow]:
    """Rows for the list, ordered.

    ``agents``: the store's registry (qms ``Agent``); ``roster``: name -> ``AgentDef``;
    ``containers``: name -> runtime ``ContainerInfo`` (has ``state``/``status``, ``id``);
    ``unread``: name -> count; ``stats``: name -> object with ``cpu``/``memory``;
    ``attention``: name -> why its terminal looks like it waits (a bell, an idle prompt);
    ``permissions``: name -> its permission requests waiting in the approval queue.
    """
    permissions = permissions or {}
    attention = attention or {}
    roster = roster or {}
    containers = containers or {}
    unread = unread or {}
    stats = stats or {}
    rows: dict[str, AgentRow] = {}
    seen: dict[str, Any] = {}
    for a in agents:
        seen[_get(a, "name")] = a
    names = set(seen) | set(roster) | {OPERATOR}
    for name in names:
        a = seen.get(name)
        d = roster.get(name)
        info = containers.get(name)
        if info is not None:
            cstate = _get(info, "state") or _get(info, "status")
        else:
            cstate = _get(a, "state")
        status = _get(a, "status") or ""
        st = stats.get(name)
        if name == OPERATOR:
            state = "running"
        else:
            state = display_state(cstate, status)
        note = str(_get(a, "status_note", "") or "")
        said = supervision(a) if a is not None and name != OPERATOR else None
        if said is not None:
            state, note = said[0], note or said[1]
        if name in attention and state in ("running", "working"):
            state = "waiting for input"
            note = note or attention[name]
        asked = permissions.get(name, 0)
        if asked and state not in CRASHED_STATES | {"crashed", "crash-looping"}:
            state = "asks permission"
            note = f"{asked} permission request{'s' if asked != 1 else ''} (P)"
        where = getattr(info, "where", None)
        engine = str((where() if callable(where) else _get(info, "engine", None) if info is not None else None)
                     or (_get(d, "engine", None) if d is not None else None) or "local")
        if engine != "local":  # where it runs, said where the operator looks
            note = f"on {engine}" + (f"; {note}" if note else "")
        rows[name] = AgentRow(
            name=name,
            tier=int(_get(d, "tier", None) if d is not None else _get(a, "tier", 0) or 0),
            path=str(_get(d, "rel_path", None) or _get(a, "path", None) or name),
            parent=_get(d, "parent", None) if d is not None else _get(a, "parent"),
            state=state,
            status=status,
            note=note,
            unread=int(unread.get(name, 0)),
            cpu=_as_float(_get(st, "cpu", None) if st is not None else None),
            memory=_as_int(_get(st, "memory", None) if st is not None else None),
            container_id=_get(info, "id", None) if info is not None else None,
            defined=d is not None or name == OPERATOR,
            engine=engine,
        )
    return order_rows(rows.values())


def _as_float(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _as_int(v) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def newly_waiting(before: Iterable[AgentRow], after: Iterable[AgentRow]) -> list[AgentRow]:
    """Rows that need the operator now and did not before (for the notification and bell)."""
    prev = {r.name: r.needs_operator for r in before}
    return [r for r in after if r.needs_operator and not prev.get(r.name, False)]
