"""Who the agents are, as the hub needs them: tier, parent, children, grants, policies.

The store's registry is the truth for names, tiers and parents (the roster registers
every agent there). The roster definitions add what only they know: grant rules,
announce, launch and shutdown policies, skills. A definition source is any callable
``name -> AgentDef | None``; by default the workspace's roster is loaded (and reloaded
when its files change) if the roster loader is available.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from crowdtui.hub.grants import Grants
from qms.names import OPERATOR



@dataclass(frozen=True)
class AgentInfo:
    name: str
    tier: int
    parent: str | None
    children: tuple[str, ...] = ()
    description: str = ""
    grants: tuple[str, ...] = ()
    announce: bool = True
    launch: str = "manual"
    shutdown: str = "manual"
    skills: tuple[str, ...] = ()
    state: str | None = None
    status: str | None = None

    @property
    def grant_set(self) -> Grants:
        return Grants.of(self.tier, self.grants)


DefinitionSource = Callable[[str], Any]


def roster_definitions(workspace, max_age: float = 2.0) -> DefinitionSource:
    """A definition source over the workspace roster, refreshed at most every ``max_age`` s.

    The first lookup loads the roster; later refreshes run in a thread (the event loop,
    which may be the app's, never parses YAML) and lookups meanwhile use the last load.
    """
    lock = threading.Lock()
    cache: dict[str, Any] = {"at": 0.0, "roster": None, "loaded": False, "loading": False}

    def load() -> None:
        try:
            from crowdtui.roster import load_roster  # type: ignore[attr-defined]

            roster = load_roster(workspace)
        except Exception:
            roster = None
        with lock:
            cache.update(roster=roster, at=time.monotonic(), loaded=True, loading=False)

    def lookup(name: str):
        with lock:
            first = not cache["loaded"]
            stale = time.monotonic() - cache["at"] > max_age
            refresh = stale and not first and not cache["loading"]
            if refresh:
                cache["loading"] = True
        if first:
            load()
        elif refresh:
            threading.Thread(target=load, name="hub-roster-refresh", daemon=True).start()
        roster = cache["roster"]
        if roster is None:
            return None
        agents = getattr(roster, "agents", {}) or {}
        return agents.get(name)

    return lookup


@dataclass
class Directory:
    """Looks agents up from the store's registry and the definitions."""

    store: Any
    definitions: DefinitionSource | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    ttl: float = 1.0  # seconds an answer is reused (grant or tree changes apply within this)
    _cache: dict[str, tuple[float, AgentInfo | None]] = field(default_factory=dict, repr=False)

    def definition(self, name: str):
        if name in self.overrides:
            return self.overrides[name]
        if self.definitions is None:
            return None
        return self.definitions(name)

    async def info(self, name: str) -> AgentInfo | None:
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = await self._info(name)
        self._cache[name] = (now, value)
        return value

    def forget(self, name: str | None = None) -> None:
        """Drop cached answers (all, or one agent's)."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    async def _info(self, name: str) -> AgentInfo | None:
        if name == OPERATOR:
            return AgentInfo(name=OPERATOR, tier=0, parent=None, description="the human operator")
        agent = await self.store.get_agent(name)
        d = self.definition(name)
        if agent is None and d is None:
            return None
        tier = agent.tier if agent is not None else d.tier
        parent = agent.parent if agent is not None else d.parent
        children = tuple(d.children) if d is not None and d.children else await self._children(name)
        return AgentInfo(
            name=name,
            tier=int(tier),
            parent=parent,
            children=children,
            description=(agent.description if agent is not None and agent.description else (d.description if d else "")),
            grants=tuple(d.grants) if d is not None else (),
            announce=bool(d.announce) if d is not None else True,
            launch=d.launch if d is not None else "manual",
            shutdown=d.shutdown if d is not None else "manual",
            skills=tuple(sorted((d.skills or {}).keys())) if d is not None else (),
            state=agent.state if agent is not None else None,
            status=agent.status if agent is not None else None,
        )

    async def descendants(self, name: str) -> set[str]:
        """``name``'s children, grandchildren and so on (each once, even if the tree loops);
        the operator's: every registered agent."""
        if name == OPERATOR:
            return {a.name for a in await self.store.list_agents()}
        seen: set[str] = set()
        todo = [name]
        while todo:
            info = await self.info(todo.pop())
            for child in info.children if info else ():
                if child not in seen and child != name:
                    seen.add(child)
                    todo.append(child)
        return seen

    async def _children(self, name: str) -> tuple[str, ...]:
        return tuple(sorted(a.name for a in await self.store.list_agents() if a.parent == name))
