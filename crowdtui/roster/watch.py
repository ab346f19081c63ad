"""Following ``agents/`` on disk: what changed between two loads, and a watch that
reloads on every change."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from crowdtui.roster.loader import load_roster, workspace_root
from crowdtui.roster.model import Roster, RosterDiff, RosterUpdate


def diff_rosters(old: Roster | None, new: Roster) -> RosterDiff:
    """Agents added, changed and removed. An agent whose only change is its list of
    children (a child came or went) is not "changed": nothing about it needs redoing."""
    before = old.agents if old else {}
    after = new.agents

    def differs(name: str) -> bool:
        return dataclasses.replace(after[name], children=()) != dataclasses.replace(before[name], children=())

    return RosterDiff(
        added=tuple(sorted(set(after) - set(before))),
        changed=tuple(sorted(n for n in set(after) & set(before) if differs(n))),
        removed=tuple(sorted(set(before) - set(after))),
    )


async def watch_roster(
    workspace,
    *,
    initial: Roster | None = None,
    stop_event: asyncio.Event | None = None,
    debounce_ms: int = 200,
    check_every_ms: int = 1000,
) -> AsyncIterator[RosterUpdate]:
    """Reload the roster whenever a file under ``agents/`` changes.

    Yields a :class:`RosterUpdate` for each reload that changed an agent or the list of
    problems. Ends when ``stop_event`` is set. ``initial`` is the roster to diff the
    first reload against (loaded here if not given). If ``agents/`` itself is removed
    or replaced (a checkout, a restore), its agents are reported removed and the watch
    carries on with the new folder once there is one (checked every ``check_every_ms``).
    """
    from watchfiles import awatch

    ws_root = workspace_root(workspace)
    agents_dir = ws_root / "agents"
    current = initial if initial is not None else await asyncio.to_thread(load_roster, ws_root)

    def stopped() -> bool:
        return stop_event is not None and stop_event.is_set()

    def folder_id() -> tuple[int, int] | None:
        try:
            st = agents_dir.stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if agents_dir.is_dir() else None

    async def reload() -> RosterUpdate | None:
        nonlocal current
        new = await asyncio.to_thread(load_roster, ws_root, current)
        diff = diff_rosters(current, new)
        problems_changed = [str(p) for p in new.problems] != [str(p) for p in current.problems]
        current = new
        return RosterUpdate(roster=new, diff=diff) if diff or problems_changed else None

    while not stopped():
        watched = folder_id()
        if watched is None:  # no agents/ (yet): look again in a moment
            if stop_event is None:
                await asyncio.sleep(check_every_ms / 1000)
            else:
                try:
                    await asyncio.wait_for(stop_event.wait(), check_every_ms / 1000)
                except TimeoutError:
                    pass
            if folder_id() is not None and (update := await reload()) is not None:
                yield update
            continue
        # the folder may have appeared or been replaced since the last load
        if (update := await reload()) is not None:
            yield update
        first = True  # changes made before the watcher was set up are caught by one more reload
        async for changes in awatch(agents_dir, stop_event=stop_event, debounce=debounce_ms,
                                    step=50, recursive=True, rust_timeout=check_every_ms,
                                    yield_on_timeout=True):
            replaced = folder_id() != watched
            if changes or replaced or first:
                first = False
                if (update := await reload()) is not None:
                    yield update
            if replaced:
                break
