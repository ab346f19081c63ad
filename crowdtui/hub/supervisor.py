"""Supervision: what happens when an agent's container stops, crashes, freezes, or its
engine goes away. Driven by the store's ``agent.state`` and ``engine.*`` events.

* **Leases tied to liveness** — when an agent's container stops or crashes, its checkout
  leases are released after ``LEASE_GRACE`` seconds (unless it runs again by then):
  ``doc.lease_released`` with the reason ("holder stopped", "holder crashed (exit 3)").
* **Restart policies** — ``restart: no | on-failure | always`` (``crowdtui.roster``); a
  restart waits ``RESTART_FIRST_DELAY`` s doubling up to ``RESTART_MAX_DELAY`` s; at
  ``CRASH_LOOP_FAILURES`` failures within ``CRASH_LOOP_WINDOW`` s the agent is left
  ``crash-looping`` with one ``agent.crash_loop`` event and a notice in the operator's
  inbox. Every restart is an ``agent.restarted`` event with the reason.
* **The engine goes away** (``engine.unreachable`` from the state follower) — the agents
  that were running are started again when it answers (``engine.reachable``), whatever
  their restart policy: they did not fail, their engine did. Nothing is started twice:
  every start first asks the runtime whether the agent already runs.
* **Stuck agents** — a running agent whose container is paused, or whose oldest unread
  message is older than ``STUCK_AFTER`` s, is recorded as stuck (``agent.stuck``, and the
  registry detail says why) until it moves again (``agent.unstuck``).

Starting goes through one callable (``start``, bound by ``crowdtui.hub.launch_policy.runtime_actions``
to ``crowdtui.runtime.lifecycle.start`` with ``by="supervisor"``), the one place restarts
enter the runtime; each records ``runtime.start`` with the hub as actor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any, Awaitable, Callable

from crowdtui.hub.directory import Directory
from crowdtui.hub.policy_loop import EventPolicy, run_steps
from qms.names import OPERATOR

log = logging.getLogger(__name__)

#: seconds a dead holder keeps its checkout leases (a quick restart keeps them)
LEASE_GRACE = 60.0
RESTART_FIRST_DELAY = 1.0
RESTART_MAX_DELAY = 60.0
#: this many failures within CRASH_LOOP_WINDOW seconds and restarts stop
CRASH_LOOP_FAILURES = 5
CRASH_LOOP_WINDOW = 600.0
#: an agent with an unread message older than this (seconds) is stuck
STUCK_AFTER = 300.0
#: agents that stopped running this many seconds before the engine went away went with it
ENGINE_SHUTDOWN_WINDOW = 30.0
#: agents started at once when the engine is back (starts are engine calls in threads)
ENGINE_BACK_STARTS = 6
#: how often (seconds) running agents are checked for being stuck
STUCK_CHECK_EVERY = 2.0

RUNNING = "running"
RESTARTING = "restarting"
CRASH_LOOPING = "crash-looping"
DOWN = ("stopped", "exited", "crashed")
ACTOR = "hub"

Start = Callable[[str], Awaitable[Any]]
Probe = Callable[[str], Awaitable[str | None]]  # the container's engine status ("running", "paused"...)


def _detail(event_detail: dict) -> dict:
    d = event_detail.get("detail") or {}
    if isinstance(d, str):
        try:
            d = json.loads(d) if d.startswith("{") else {}
        except ValueError:
            d = {}
    return d if isinstance(d, dict) else {}


def exit_reason(state: str, detail: dict) -> str:
    """``exit 3`` / ``out of memory`` / ``exit 0`` — why a container ended, in a few words."""
    if detail.get("oom_killed"):
        return "out of memory"
    code = detail.get("exit_code")
    return f"exit {code}" if code is not None else state


def holder_reason(state: str, detail: dict) -> str:
    if state == "crashed":
        return f"holder crashed ({exit_reason(state, detail)})"
    return "holder stopped"


class Supervisor(EventPolicy):
    KINDS = ("agent.state", "engine.unreachable", "engine.reachable")

    def __init__(self, store: Any, directory: Directory, start: Start | None = None, probe: Probe | None = None, *,
                 paused: Callable[[], Awaitable[set[str]]] | None = None,
                 lease_grace: float = LEASE_GRACE, first_delay: float = RESTART_FIRST_DELAY,
                 max_delay: float = RESTART_MAX_DELAY, loop_failures: int = CRASH_LOOP_FAILURES,
                 loop_window: float = CRASH_LOOP_WINDOW, stuck_after: float = STUCK_AFTER,
                 stuck_every: float = STUCK_CHECK_EVERY, poll: float = 0.25):
        self.store = store
        self.directory = directory
        self.start = start
        self.probe = probe
        self.paused = paused  # all paused agents in one call (else ``probe`` per agent)
        self.lease_grace = lease_grace
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.loop_failures = loop_failures
        self.loop_window = loop_window
        self.stuck_after = stuck_after
        self.stuck_every = stuck_every
        self.poll = poll
        self.follow_events(store)
        self.releases: dict[str, tuple[float, str]] = {}  # agent -> (due, reason)
        self.restarts: dict[str, tuple[float, str, int]] = {}  # agent -> (due, reason, attempt)
        self.failures: dict[str, deque[float]] = {}
        self.counted: dict[str, str] = {}  # agent -> container whose end was last counted
        self.looping: set[str] = set()
        self.engine_down = False
        self.engine_lost: dict[str, str] = {}  # agents to start when the engine answers -> reason
        self.running: set[str] = set()
        self.went_down: dict[str, float] = {}  # agent -> when it last stopped running
        self.stuck: dict[str, str] = {}
        self._next_stuck_check = 0.0

    # ---- the loop

    async def run(self, from_event: int | None = None) -> None:
        await run_steps(self, "supervisor step", from_event, before=self.catch_up)

    async def catch_up(self) -> None:
        """What was true before we followed: dead holders' leases, running agents."""
        now = time.monotonic()
        for agent in await self.store.list_agents():
            if agent.state == RUNNING:
                self.running.add(agent.name)
        for holder in await self.store.lease_holders():
            agent = await self.store.get_agent(holder)
            if agent is not None and agent.state in DOWN + (CRASH_LOOPING,):
                detail = _detail({"detail": agent.state_detail})
                self.releases.setdefault(holder, (now + self.lease_grace, holder_reason(agent.state, detail)))

    async def step(self) -> None:
        events = await self.events.read(advance=False)  # moved event by event: one that
        for e in events:  # fails is skipped, the rest are read again
            self.last_event = e.id
            if e.kind == "engine.unreachable":
                await self._engine_lost()
            elif e.kind == "engine.reachable":
                await self._engine_back()
            else:
                await self._on_state(e.subject, str(e.detail.get("state", "")), _detail(e.detail))
        now = time.monotonic()
        for name, (due, reason) in sorted(self.releases.items()):
            if due <= now:
                del self.releases[name]
                await self._release(name, reason)
        for name, (due, reason, attempt) in sorted(self.restarts.items()):
            if due <= now and not self.engine_down:
                del self.restarts[name]
                await self._restart(name, reason, attempt)
        if (self.probe is not None or self.paused is not None) and now >= self._next_stuck_check:
            self._next_stuck_check = now + self.stuck_every
            await self.check_stuck()

    # ---- agent states

    async def _on_state(self, name: str, state: str, detail: dict) -> None:
        now = time.monotonic()
        if state == RUNNING:
            self.running.add(name)
            self.releases.pop(name, None)
            self.engine_lost.pop(name, None)
            if name in self.looping:  # started again by hand after a crash loop: a fresh count
                self.forgive(name)
            return
        was_running = name in self.running
        self.running.discard(name)
        self.stuck.pop(name, None)
        if state not in DOWN:
            return
        if was_running:
            self.went_down[name] = now
        self.releases.setdefault(name, (now + self.lease_grace, holder_reason(state, detail)))
        if state == "stopped":  # the operator's (or a policy's) intent: no restart
            self.restarts.pop(name, None)
            self.engine_lost.pop(name, None)
            return
        if self.engine_down:
            if was_running:
                self.engine_lost[name] = "engine gone"
            self.restarts.pop(name, None)
            return
        container = str(detail.get("container") or "")
        if container and self.counted.get(name) == container:
            return  # the same end seen again (a replayed event, another process's record)
        agent = await self.store.get_agent(name)
        if agent is None or agent.state == RUNNING:
            return  # news of an older container: the agent already runs again
        policy = self._policy(name)
        if policy == "no" or (policy == "on-failure" and state != "crashed") or name in self.looping:
            return
        if container:
            self.counted[name] = container
        window = self.failures.setdefault(name, deque())
        window.append(now)
        while window and window[0] < now - self.loop_window:
            window.popleft()
        reason = exit_reason(state, detail)
        if len(window) >= self.loop_failures:
            await self._crash_loop(name, reason, len(window))
            return
        attempt = len(window)
        delay = min(self.first_delay * 2 ** (attempt - 1), self.max_delay)
        self.restarts[name] = (now + delay, reason, attempt)
        await self._set_state(name, RESTARTING, {"attempt": attempt, "limit": self.loop_failures,
                                                 "last_exit": reason, "delay": delay, "container": container},
                              unless=(RUNNING,))  # a start recorded meanwhile (the operator's) wins

    def _policy(self, name: str) -> str:
        from crowdtui.roster import restart_policy

        d = self.directory.definition(name)
        return restart_policy(d) if d is not None else "no"

    async def _set_state(self, name: str, state: str, detail: dict, unless: tuple[str, ...] = ()) -> None:
        try:
            await self.store.set_agent_state(name, state, detail=detail, actor=ACTOR, unless=unless)
        except Exception as exc:  # removed from the roster meanwhile
            log.info("state of %s not recorded: %s", name, exc)

    async def _release(self, name: str, reason: str) -> None:
        agent = await self.store.get_agent(name)
        if agent is not None and agent.state == RUNNING:
            return
        docs = await self.store.release_leases_of(name, reason, actor=ACTOR)
        if docs:
            log.info("released %s's checkouts of %s (%s)", name, ", ".join(docs), reason)

    # ---- restarts

    async def _restart(self, name: str, reason: str, attempt: int | None) -> bool:
        """Start ``name`` again unless it already runs; ``agent.restarted`` when started."""
        if self.start is None:
            return False
        if self.probe is not None:
            try:
                if await self.probe(name) in (RUNNING, "paused", "restarting"):
                    # Someone started it already: never twice. Start returns the running one
                    # as it is and records its state (over a "restarting" of ours).
                    await self.start(name)
                    return False
            except Exception:
                pass
        detail: dict[str, Any] = {"reason": reason}
        if attempt is not None:
            detail.update(attempt=attempt, limit=self.loop_failures)
        try:
            info = await self.start(name)
        except Exception as exc:
            from crowdtui.errors import EngineUnavailable

            if isinstance(exc, EngineUnavailable) or self.engine_down:
                self.engine_lost[name] = "engine gone"
            await self.store.append_event(ACTOR, "agent.restart_failed", name,
                                          {**detail, "error": str(exc)[:300]})
            return False
        detail["container"] = getattr(info, "short_id", "") or ""
        await self.store.append_event(ACTOR, "agent.restarted", name, detail)
        return True

    async def _crash_loop(self, name: str, reason: str, failures: int) -> None:
        self.looping.add(name)
        self.restarts.pop(name, None)
        detail = {"failures": failures, "window": self.loop_window, "last_exit": reason}
        await self._set_state(name, CRASH_LOOPING, detail)
        await self.store.append_event(ACTOR, "agent.crash_loop", name, detail)
        try:
            await self.store.send_message(
                ACTOR, OPERATOR,
                f"{name} is crash-looping: {failures} failures in {self.loop_window / 60:.0f} minutes "
                f"(last: {reason}); restarts stopped. Look at its logs (`crowdtui logs {name}`), "
                f"fix it, then start it again (`crowdtui up {name}`).",
                priority="high",
            )
        except Exception as exc:
            log.warning("crash-loop notice for %s not sent: %s", name, exc)

    def forgive(self, name: str) -> None:
        """The operator started the agent again by hand: its failures are forgotten."""
        self.looping.discard(name)
        self.failures.pop(name, None)

    # ---- the engine

    async def _engine_lost(self) -> None:
        """The engine stopped answering. What ran then (and what died just before: an engine
        shutting down stops its containers first) is started again when it answers."""
        self.engine_down = True
        now = time.monotonic()
        recent = {n for n, t in self.went_down.items() if now - t <= ENGINE_SHUTDOWN_WINDOW}
        for name in self.running | set(self.restarts) | recent:
            agent = await self.store.get_agent(name)
            if agent is not None and agent.state != "stopped":
                self.engine_lost.setdefault(name, "engine gone")
        self.restarts.clear()

    async def _engine_back(self) -> None:
        self.engine_down = False
        lost, self.engine_lost = self.engine_lost, {}
        gate = asyncio.Semaphore(ENGINE_BACK_STARTS)

        async def one(name: str) -> None:
            async with gate:
                await self._restart(name, lost[name], None)

        for name in lost:
            self.releases.pop(name, None)
        await asyncio.gather(*(one(n) for n in sorted(lost)))

    # ---- stuck agents

    async def check_stuck(self) -> dict[str, str]:
        """Record agents that became stuck (or moved again); returns the stuck ones."""
        now = time.time()
        oldest = await self.store.oldest_unread()
        try:
            paused = await self.paused() if self.paused is not None else None
        except Exception:  # the engine is away: nothing to say about pauses now
            return dict(self.stuck)
        for name in sorted(self.running):
            why = None
            try:
                status = ("paused" if name in paused else RUNNING) if paused is not None else await self.probe(name)
            except Exception:
                continue
            if status == "paused":
                why = "container paused"
            elif name in oldest and now - oldest[name] > self.stuck_after:
                why = f"unread work for {now - oldest[name]:.0f} s"
            was = self.stuck.get(name)
            if why and not was:
                # the state first, then the event: whoever reads the event finds the state
                self.stuck[name] = why
                agent = await self.store.get_agent(name)
                if agent is not None and agent.state == RUNNING:
                    detail = _detail({"detail": agent.state_detail})
                    await self._set_state(name, RUNNING, {**detail, "stuck": why})
                await self.store.append_event(ACTOR, "agent.stuck", name, {"reason": why})
            elif was and not why:
                del self.stuck[name]
                agent = await self.store.get_agent(name)
                detail = _detail({"detail": agent.state_detail}) if agent is not None else {}
                if agent is not None and agent.state == RUNNING and "stuck" in detail:
                    detail.pop("stuck")
                    await self._set_state(name, RUNNING, detail)
                await self.store.append_event(ACTOR, "agent.unstuck", name, {"was": was})
        return dict(self.stuck)
