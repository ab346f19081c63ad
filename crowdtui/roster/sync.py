"""Putting the roster into the store: registry rows and ``agent.*`` events, at start-up
(``sync_roster``), per reload (``record_roster_changes``) and for as long as the host
runs (``follow_roster``)."""

from __future__ import annotations

import asyncio
from typing import Any

from crowdtui.roster.loader import load_roster, workspace_root
from crowdtui.roster.model import AGENT_FILE, RESERVED_NAMES, AgentDef, Roster, RosterDiff
from crowdtui.roster.watch import watch_roster


def _agent_detail(agent: AgentDef) -> dict[str, Any]:
    return {"path": agent.rel_path, "tier": agent.tier, "parent": agent.parent,
            "file": f"agents/{agent.rel_path}/{AGENT_FILE}"}


async def record_roster_changes(store, roster: Roster, diff: RosterDiff, *, actor: str = "roster") -> None:
    """Put one reload into the store: registry rows and ``agent.added/changed/removed`` events.

    ``agent.added`` / ``agent.changed`` (detail: path, tier, parent, file) are appended
    here; ``agent.removed`` comes from ``store.remove_agent``. Parents are registered
    before their children; removed agents are removed last.
    """
    for name in sorted(diff.added + diff.changed, key=lambda n: roster.agents[n].tier):
        agent = roster.agents[name]
        await store.upsert_agent(name, path=agent.rel_path, tier=agent.tier, parent=agent.parent,
                                 description=agent.description, actor=actor)
        kind = "agent.added" if name in diff.added else "agent.changed"
        await store.append_event(actor, kind, name, _agent_detail(agent))
    for name in diff.removed:
        from qms.errors import NotFound

        try:
            await store.remove_agent(name, actor=actor)  # the store records agent.removed itself
        except NotFound:
            pass  # never registered, or removed by someone else meanwhile


async def sync_roster(store, roster: Roster, *, actor: str = "roster") -> RosterDiff:
    """Make the store's registry match ``roster`` (at start-up); returns what it changed.

    Agents whose registry row differs in path, tier, parent or description count as
    changed; registered agents that are no longer in the roster are removed.
    """
    registered = {a.name: a for a in await store.list_agents() if a.name not in RESERVED_NAMES}
    added, changed = [], []
    for name, agent in roster.agents.items():
        row = registered.get(name)
        if row is None:
            added.append(name)
        elif (row.path, row.tier, row.parent, row.description) != (
            agent.rel_path, agent.tier, agent.parent, agent.description
        ):
            changed.append(name)
    removed = sorted(set(registered) - set(roster.agents))
    diff = RosterDiff(tuple(sorted(added)), tuple(sorted(changed)), tuple(removed))
    if diff:
        await record_roster_changes(store, roster, diff, actor=actor)
    return diff


async def follow_roster(
    workspace,
    store,
    *,
    stop_event: asyncio.Event | None = None,
    on_update=None,
    actor: str = "roster",
    initial: Roster | None = None,
) -> None:
    """Keep the store's registry in step with ``agents/`` until ``stop_event`` is set.

    Syncs once at the start (unless ``initial`` is given: a roster already synced, as
    the host does before it opens the hub), then records every reload
    (``record_roster_changes``). ``on_update(update)`` (plain or async) is called after
    each reload is recorded, e.g. to log it or refresh a view.
    """
    roster = initial
    if roster is None:
        roster = await asyncio.to_thread(load_roster, workspace_root(workspace))
        await sync_roster(store, roster, actor=actor)
    async for update in watch_roster(workspace, initial=roster, stop_event=stop_event):
        if update.diff:
            await record_roster_changes(store, update.roster, update.diff, actor=actor)
        if on_update is not None:
            result = on_update(update)
            if asyncio.iscoroutine(result):
                await result
