"""Agents that manage agents: ``list_agents``, ``start_agent``, ``stop_agent``,
``restart_agent``, ``spawn_agent`` and ``retire_agent`` on the hub.

Authority follows the roster tree, as for ``delegate`` and ``observe``: an agent acts only on
its own descendants (the registry's parent chain), whatever its grants say; the operator on
every agent. The grants (tier defaults in :mod:`crowdtui.hub.grants`, rules in AGENT.md)
decide first. Quotas (``[quotas]`` in crowd.toml, agents only): ``spawned_per_agent``, the
spawned children an agent may have at once, and ``agents_running_max``, the running agents
above which an agent's ``start_agent``/``restart_agent``/``spawn_agent(start=true)`` is refused.

Every action is an event: starts and stops go through the one lifecycle API
(:mod:`crowdtui.runtime.lifecycle`, actor ``hub`` — or ``operator`` in ``crowdtui mcp`` —
with the calling tool and agent as the reason); ``agent.spawned`` / ``agent.retired`` name
the caller; a refusal is a ``hub.denied`` event (outside the caller's tree, not spawned, has
children) or a ``quota.refused`` event (a quota), with the reason.

A spawned agent is a file, ``agents/<caller's folder>/<name>/AGENT.md`` (see
:mod:`crowdtui.hub.spawn`), so the roster stays the one source of truth: it is registered at
once and the roster follower sees the same file. Retiring stops and removes its container,
archives its home (``.crowd/archive/``), removes its folder and its registry row.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from mcp.shared.exceptions import MCPError

from crowdtui.hub.directory import Directory
from crowdtui.hub.identity import VIA, caller
from crowdtui.hub.spawn import SpawnRefused, compose, front_keys, parse, rewrite, template_file, within_parent
from crowdtui.hub.tools import CONFLICT, DENIED, INVALID_PARAMS, READ_ONLY, plain, qms_errors
from qms.names import OPERATOR

RUNNING = "running"


@dataclass
class AgentManager:
    """What the management tools act with. ``runtime`` is set when the host has one (the hub
    gets it with its policies); ``connect`` makes one on first use (``crowdtui mcp``)."""

    workspace: Any
    store: Any
    directory: Directory
    runtime: Any = None
    actor: str = "hub"  # recorded as the lifecycle actor
    connect: Callable[[], Awaitable[Any]] | None = None
    open_door: Callable[[str], Awaitable[Any]] | None = None  # the hub's, so a started agent finds its door
    close_door: Callable[[str], Awaitable[Any]] | None = None
    host_note: Callable[[], str | None] | None = None  # said after a start (crowdtui mcp: no host runs)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def quota(self, key: str) -> int:
        return int(getattr(self.workspace.quotas(), key))

    async def engine(self, action: str, name: str) -> Any:
        if self.runtime is None and self.connect is not None:
            try:
                self.runtime = await self.connect()
            except Exception as exc:  # EngineUnavailable and the like: say it, once per call
                raise MCPError(code=CONFLICT, message=f"cannot {action} {name}: no Docker engine answers "
                                                      f"({' '.join(str(exc).split())[:200]}); start Docker") from exc
        if self.runtime is None:
            raise MCPError(code=CONFLICT, message=f"cannot {action} {name}: this host has no Docker engine; "
                                                  "ask the operator to start Docker and the host")
        return self.runtime

    async def roster(self):
        from crowdtui.roster import load_roster

        return await asyncio.to_thread(load_roster, self.workspace)

    async def refuse(self, me: str, tool: str, reason: str, args: dict[str, Any], code: int = DENIED):
        await self.store.append_event(me, "hub.denied", tool, {"reason": reason, "via": VIA.get(), "args": args})
        raise MCPError(code=code, message=reason)

    async def refuse_quota(self, me: str, limit: str, cap: int, used: int, advice: str):
        reason = (f"{me} is over its quota {limit} = {cap}: {used} now; {advice} "
                  "(the operator can raise it in crowd.toml [quotas])")
        await self.store.append_event(me, "quota.refused", limit, {"limit": limit, "max": cap, "used": used,
                                                                   "asked": 1, "reason": reason})
        raise MCPError(code=DENIED, message=reason)

    async def is_below(self, target: str, me: str) -> bool:
        """Is ``target`` a descendant of ``me`` in the registry (the operator: every agent)?"""
        if me == OPERATOR:
            return True
        name, seen = target, set()
        while name and name not in seen:
            seen.add(name)
            agent = await self.store.get_agent(name)
            name = agent.parent if agent is not None else None
            if name == me:
                return True
        return False

    async def own(self, me: str, tool: str, target: str) -> None:
        from qms.names import validate_name

        with qms_errors():
            validate_name(target)
        if not await self.is_below(target, me):
            await self.refuse(me, tool, f"{target!r} is not below {me} in the roster; you may {tool.split('_')[0]} "
                                        "only your own descendants (see list_agents: manageable)", {"name": target})

    async def check_running_quota(self, me: str) -> None:
        if me == OPERATOR:
            return
        cap = self.quota("agents_running_max")
        running = sum(1 for a in await self.store.list_agents() if a.state == RUNNING)
        if running >= cap:
            await self.refuse_quota(me, "agents_running_max", cap, running,
                                    "stop an agent you no longer need first")

    async def lifecycle(self, me: str, tool: str, action: str, name: str) -> dict[str, Any]:
        from crowdtui.runtime import lifecycle

        await self.own(me, tool, name)
        async with self.lock:
            definition = None
            if action != "stop":
                definition = (await self.roster()).get(name)
                if definition is None:
                    raise MCPError(code=INVALID_PARAMS, message=f"{name} is not in the roster (agents/); "
                                                                "call list_agents to see who exists")
                agent = await self.store.get_agent(name)
                if agent is None or agent.state != RUNNING:  # a restart of a running one adds none
                    await self.check_running_quota(me)
            runtime = await self.engine(action, name)
            if definition is not None and self.open_door is not None:
                await self.open_door(name)
            try:
                info = await lifecycle.act(runtime, self.store, action, name, definition, actor=self.actor,
                                           reason=f"{tool} by {me}")
            except MCPError:
                raise
            except Exception as exc:
                raise MCPError(code=CONFLICT, message=f"{action} of {name} failed: {' '.join(str(exc).split())[:300]}") from exc
        out = {"name": name, "state": info.state, "container": info.short_id}
        note = self.host_note() if self.host_note is not None and action != "stop" else None
        if note:
            out["note"] = note
        return out

    # ---- spawn and retire ------------------------------------------------------------------

    async def spawn(self, me: str, name: str, *, template: str | None, definition: dict[str, Any] | None,
                    persona: str | None, description: str | None, start: bool) -> dict[str, Any]:
        from qms.names import validate_name

        from crowdtui.roster.model import RESERVED_NAMES
        from crowdtui.runtime import lifecycle

        args = {"name": str(name)[:80], "template": str(template)[:80]}
        try:
            validate_name(name)
        except Exception as exc:  # a path, a traversal: the child goes only below the caller's folder
            await self.refuse(me, "spawn_agent", f"cannot spawn: {exc}; the child is placed in your own folder, "
                                                 "so give a plain name", args, INVALID_PARAMS)
        if name in RESERVED_NAMES:
            await self.refuse(me, "spawn_agent", f"{name!r} is reserved; choose another name", args, INVALID_PARAMS)
        async with self.lock:
            roster = await self.roster()
            parent = roster.get(me) if me != OPERATOR else None
            if me != OPERATOR and parent is None:
                await self.refuse(me, "spawn_agent", f"{me} has no definition in the roster to place a child under; "
                                                     "ask the operator", args)
            if name in roster or await self.store.get_agent(name) is not None:
                await self.refuse(me, "spawn_agent", f"an agent named {name!r} exists already; choose another name",
                                  args, CONFLICT)
            if me != OPERATOR:
                cap = self.quota("spawned_per_agent")
                mine = sorted(a.name for a in roster if a.spawned_by == me)
                if len(mine) >= cap:
                    await self.refuse_quota(me, "spawned_per_agent", cap, len(mine),
                                            f"retire one of {', '.join(mine)} first")
                if start:
                    await self.check_running_quota(me)
            rel = (parent.rel_path + "/" + name) if parent is not None else name
            folder = self.workspace.agents_dir / rel
            if folder.exists():
                raise MCPError(code=CONFLICT, message=f"agents/{rel} exists already; choose another name")
            try:
                text = await asyncio.to_thread(self._compose_checked, me, name, rel, parent, template,
                                               definition, persona, description)
            except SpawnRefused as exc:
                await self.refuse(me, "spawn_agent", f"cannot spawn {name}: {exc}", args, INVALID_PARAMS)
            await asyncio.to_thread(_write_new, folder, text)
            child = (await self.roster()).get(name)
            if child is None:  # lost a race with an operator's edit: leave nothing half made
                await asyncio.to_thread(shutil.rmtree, folder, True)
                raise MCPError(code=CONFLICT, message=f"agents/{rel} did not load as {name}; try again")
            try:
                with qms_errors():
                    await lifecycle.register(self.store, child, actor=me)
            except MCPError:  # the store refused it (e.g. its description): leave no file behind
                await asyncio.to_thread(shutil.rmtree, folder, True)
                raise
            with qms_errors():
                await self.store.append_event(me, "agent.spawned", name, {
                    "path": rel, "file": f"agents/{rel}/AGENT.md", "parent": child.parent, "tier": child.tier,
                    "template": template})
            self.directory.forget()
        out = {"name": name, "path": rel, "file": f"agents/{rel}/AGENT.md", "tier": child.tier,
               "parent": child.parent, "state": "stopped"}
        if start:
            out.update(await self.lifecycle(me, "spawn_agent", "start", name))
        return out

    def _compose_checked(self, me, name, rel, parent, template, definition, persona, description) -> str:
        path = template_file(self.workspace.agents_dir, template) if template else None
        text = compose(name, me, template_path=path, definition=definition, persona=persona,
                       description=description)
        scratch_root = self.workspace.crowd_dir / "run"
        scratch_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="spawn-", dir=scratch_root) as scratch:
            fields = parse(text, Path(scratch), tuple(rel.split("/")))
            if parent is not None:
                text = rewrite(text, within_parent(fields, front_keys(text).get("resources"), parent))
                parse(text, Path(scratch), tuple(rel.split("/")))  # what is written still loads
        return text

    async def retire(self, me: str, name: str) -> dict[str, Any]:
        from crowdtui.runtime import lifecycle
        from crowdtui.runtime.disk import archive_home

        await self.own(me, "retire_agent", name)
        async with self.lock:
            roster = await self.roster()
            d = roster.get(name)
            args = {"name": name}
            if d is None or d.spawned_by is None:
                await self.refuse(me, "retire_agent", f"{name} was not spawned by an agent or through spawn_agent "
                                                      "(its AGENT.md has no spawned_by); only the operator removes it, "
                                                      "by deleting its folder", args)
            if d.children:
                await self.refuse(me, "retire_agent", f"{name} has children ({', '.join(d.children)}); "
                                                      "retire them first", args, CONFLICT)
            runtime = await self.engine("retire", name)
            reason = f"retire_agent by {me}"
            info = await runtime.info(name)
            try:
                if info is not None and info.running:
                    info = await lifecycle.stop(runtime, self.store, name, actor=self.actor, reason=reason)
                if info is not None:
                    await lifecycle.remove(runtime, self.store, name, info, actor=self.actor)
            except Exception as exc:
                raise MCPError(code=CONFLICT, message=f"could not remove {name}'s container: "
                                                      f"{' '.join(str(exc).split())[:300]}") from exc
            if self.close_door is not None:
                await self.close_door(name)
            archive = await asyncio.to_thread(archive_home, self.workspace, name)
            await asyncio.to_thread(shutil.rmtree, d.file.parent)
            with qms_errors():
                try:
                    await self.store.remove_agent(name, actor=me)
                except Exception as exc:
                    from qms.errors import NotFound

                    if not isinstance(exc, NotFound):
                        raise
                rel_archive = archive.relative_to(self.workspace.root).as_posix()
                await self.store.append_event(me, "agent.retired", name, {
                    "path": d.rel_path, "archive": rel_archive, "spawned_by": d.spawned_by})
            self.directory.forget()
        return {"name": name, "retired": True, "archive": rel_archive}

    # ---- list ----------------------------------------------------------------------------

    async def listing(self, me: str) -> dict[str, Any]:
        from crowdtui.runtime.engine import where

        roster = await self.roster()
        with qms_errors():
            agents = await self.store.list_agents()
            unread = await self.store.unread_counts()
        out = []
        for a in agents:
            d = roster.get(a.name)
            try:
                detail = json.loads(a.state_detail) if a.state_detail else {}
            except ValueError:
                detail = {}
            out.append({
                "name": a.name, "tier": a.tier, "parent": a.parent, "description": a.description,
                "state": a.state, "status": a.status, "unread": unread.get(a.name, 0),
                "runs_on": f"docker engine at {where()}" if a.state == RUNNING else None,
                "container": detail.get("container") if isinstance(detail, dict) else None,
                "spawned_by": d.spawned_by if d is not None else None,
                "launch": d.launch if d is not None else None,
                "manageable": await self.is_below(a.name, me),
            })
        return {"agents": plain(out)}


def _write_new(folder: Path, text: str) -> None:
    """Create ``folder`` (it must not exist) and its AGENT.md, renamed into place whole."""
    folder.mkdir(parents=True, exist_ok=False)
    tmp = folder / ".AGENT.md.new"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / "AGENT.md")


def add_manage_tools(server, manager: AgentManager) -> None:
    """Register the agent-management tools on ``server`` (the hub's, or ``crowdtui mcp``'s)."""

    @server.tool(annotations=READ_ONLY)
    async def list_agents() -> dict[str, Any]:
        """Every registered agent: tier, parent, state, status, unread messages, where it runs,
        who spawned it, and whether I may manage it (it is below me in the roster)."""
        return await manager.listing(caller())

    @server.tool()
    async def start_agent(name: str) -> dict[str, Any]:
        """Start one of my descendants' containers (it keeps running until stopped)."""
        return await manager.lifecycle(caller(), "start_agent", "start", name)

    @server.tool()
    async def stop_agent(name: str) -> dict[str, Any]:
        """Stop one of my descendants' containers (its home stays)."""
        return await manager.lifecycle(caller(), "stop_agent", "stop", name)

    @server.tool()
    async def restart_agent(name: str) -> dict[str, Any]:
        """Replace one of my descendants' containers with a fresh one from its current AGENT.md."""
        return await manager.lifecycle(caller(), "restart_agent", "restart", name)

    @server.tool()
    async def spawn_agent(name: str, description: str | None = None, persona: str | None = None,
                          template: str | None = None, definition: dict[str, Any] | None = None,
                          start: bool = False) -> dict[str, Any]:
        """Create a new agent as my child: agents/<my folder>/<name>/AGENT.md.

        template: a template of the operator's (agents/.templates/<template>.md); definition:
        AGENT.md keys (e.g. {"command": ["crowd-agent", "--role", "echo"], "resources":
        {"memory": "128m"}}), over the template's. It gets at most my grants and resources.
        start: start it at once."""
        return await manager.spawn(caller(), name, template=template, definition=definition, persona=persona,
                                   description=description, start=start)

    @server.tool()
    async def retire_agent(name: str) -> dict[str, Any]:
        """Remove an agent spawned below me: its container goes, its home is archived, its
        folder under agents/ is removed. Retire its children first."""
        return await manager.retire(caller(), name)
