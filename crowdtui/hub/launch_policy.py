"""Launch and shutdown policies, driven by the store's events.

* ``launch: on_task`` — an agent that is not running is started when work arrives for
  it (a message, which routing a document for review or approval also sends).
* ``shutdown: inbox_empty`` — a running agent is stopped once it has no unread
  messages and no pending tasks, and no message went to or from it for ``grace`` s.
* ``shutdown: idle`` — a running agent is stopped after ``idle_after`` s in which no
  message went to or from it (polling its inbox is not work).

Starting and stopping are callables (``runtime_actions`` binds them to the agent-lifecycle
API and the roster), so the policy is a small component of its own. Every decision is an
event: ``hub.launch`` / ``hub.shutdown`` with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from crowdtui.hub.directory import Directory
from crowdtui.hub.policy_loop import EventPolicy, run_steps
from qms.names import OPERATOR

log = logging.getLogger(__name__)

Action = Callable[[str], Awaitable[Any]]
RUNNING = "running"
ACTOR = "hub"  # who the policies' starts and stops are recorded as


class LaunchPolicy(EventPolicy):
    KINDS = ("message.sent", "agent.state")

    def __init__(self, store: Any, directory: Directory, start: Action, stop: Action, *,
                 grace: float = 5.0, idle_after: float = 300.0, poll: float = 0.5):
        self.store = store
        self.directory = directory
        self.start = start
        self.stop = stop
        self.grace = grace
        self.idle_after = idle_after
        self.poll = poll
        self.follow_events(store)
        self.last_activity: dict[str, float] = {}
        self._busy: set[str] = set()

    async def run(self, from_event: int | None = None) -> None:
        await run_steps(self, "launch policy step", from_event)

    async def step(self) -> list[tuple[str, str]]:
        """One round: react to new events, then check shutdowns. Returns (action, agent) pairs."""
        done: list[tuple[str, str]] = []
        now = time.monotonic()
        events = await self.events.read()
        wanted: list[str] = []
        for e in events:
            if e.kind == "message.sent":
                self.last_activity[e.actor] = now
                if e.subject != OPERATOR:
                    self.last_activity[e.subject] = now
                    wanted.append(e.subject)
            elif e.kind == "agent.state" and e.detail.get("state", None) == RUNNING:
                self.last_activity.setdefault(e.subject, now)
        for name in dict.fromkeys(wanted):
            info = await self.directory.info(name)
            if info is None or info.launch != "on_task" or name in self._busy:
                continue
            agent = await self.store.get_agent(name)
            if agent is not None and agent.state == RUNNING:
                continue
            if await self._act("launch", name, "work arrived in its inbox", self.start):
                self.last_activity[name] = time.monotonic()
                done.append(("launch", name))
        for agent in await self.store.list_agents():
            if agent.state != RUNNING or agent.name in self._busy:
                continue
            info = await self.directory.info(agent.name)
            if info is None or info.shutdown not in ("inbox_empty", "idle"):
                continue
            quiet = now - self.last_activity.setdefault(agent.name, now)
            if info.shutdown == "idle":
                if quiet >= self.idle_after:
                    reason = f"idle for {quiet:.0f} s"
                else:
                    continue
            else:
                if quiet < self.grace:
                    continue
                unread = (await self.store.unread_counts()).get(agent.name, 0)
                tasks = await self.store.pending_tasks(agent.name)
                if unread or tasks:
                    continue
                reason = "inbox empty and nothing pending"
            if await self._act("shutdown", agent.name, reason, self.stop):
                done.append(("shutdown", agent.name))
        return done

    async def _act(self, what: str, name: str, reason: str, action: Action) -> bool:
        self._busy.add(name)
        try:
            await action(name)
            await self.store.append_event("hub", f"hub.{what}", name, {"reason": reason})
            return True
        except Exception as exc:
            log.warning("%s of %s failed: %s", what, name, exc)
            try:
                await self.store.append_event("hub", f"hub.{what}_failed", name, {"reason": reason, "error": str(exc)[:300]})
            except Exception:
                pass
            return False
        finally:
            self._busy.discard(name)


def runtime_actions(runtime: Any, store: Any, definitions: Callable[[str], Any], *,
                    by: str = "launch policy") -> tuple[Action, Action]:
    """Start/stop callables over the agent-lifecycle API (``crowdtui.runtime.lifecycle``):
    each records ``runtime.start`` / ``runtime.stop`` with the hub as actor and ``by`` (the
    launch policy, the supervisor) as the reason, and the container's state at once."""
    from crowdtui.runtime import lifecycle

    async def start(name: str):
        d = definitions(name)
        if d is None:
            raise LookupError(f"{name} has no definition in the roster; add agents/.../{name}/AGENT.md")
        return await lifecycle.start(runtime, store, d, actor=ACTOR, reason=by)

    async def stop(name: str):
        return await lifecycle.stop(runtime, store, name, actor=ACTOR, reason=by)

    return start, stop


def runtime_probe(runtime: Any) -> Callable[[str], Awaitable[str | None]]:
    """The engine's status of an agent's container ("running", "paused", "exited"...), or None."""

    async def probe(name: str) -> str | None:
        container = await runtime.container(name)
        return None if container is None else container.status

    return probe


def runtime_paused(runtime: Any) -> Callable[[], Awaitable[set[str]]]:
    """The agents whose containers are paused now (one engine call for all of them)."""

    from crowdtui.runtime import labels

    def listed() -> list:
        wanted = {"status": "paused", "label": f"{labels.WORKSPACE}={runtime.workspace.id}"}
        engines = getattr(runtime, "engines", None)
        clients = engines.connected().values() if engines is not None else [runtime.client]
        found = []
        for client in clients:  # every engine connected so far (one call each)
            try:
                found += client.containers.list(filters=wanted)
            except Exception:
                if client is runtime.client:
                    raise  # the local engine's trouble is the caller's, as before
        return found

    async def paused() -> set[str]:
        containers = await asyncio.to_thread(listed)
        return {c.labels.get(labels.AGENT, "") for c in containers} - {""}

    return paused
