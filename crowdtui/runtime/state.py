"""Agent states follow the engine: container events become registry states and events.

:class:`StateFollower` reads the engine's event stream for this workspace's containers
(in a thread), inspects the container on each start/die/oom and records the result with
``store.set_agent_state(name, state, detail=...)``: running, exited (code 0), crashed
(non-zero exit, with the code; OOM-killed said as such), stopped (the operator stopped it
through :meth:`Runtime.stop`, which leaves a marker so the exit is not called a crash).
``set_agent_state`` appends an ``agent.state`` event when something changed, and the
detail is computed the same way by every process, so two followers write one event.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from crowdtui.engine_config import LOCAL
from crowdtui.errors import CrowdError
from crowdtui.runtime import labels
from crowdtui.runtime.containers import ContainerInfo, Runtime, info_from_attrs
from qms.names import OPERATOR

log = logging.getLogger(__name__)

#: seconds between asking an engine that went away whether it answers again
ENGINE_RETRY = 0.5
#: engine actions that can change what the registry should say
WATCHED_ACTIONS = ("start", "die", "oom", "stop", "kill", "destroy", "create", "restart", "pause", "unpause")


class StateFollower:
    """Keeps the registry's agent states in step with the engine.

    ``await follower.run(stop_event)`` reconciles once, then follows until ``stop_event``
    is set (or the task is cancelled). ``reconcile()`` alone brings the registry up to date.
    ``ready`` is set once ``run`` is subscribed to the engine's events: every container
    event from then on is seen.
    """

    def __init__(self, runtime: Runtime, store, *, actor: str = "runtime", engine: str = LOCAL):
        self.runtime = runtime
        #: the engine followed; agents placed on another engine are that engine's follower's
        self.engine = engine
        self.store = store
        self.actor = actor
        self._stream = None
        self._stream_lock = threading.Lock()
        self._closed = False
        self._back = False  # the engine answered again after an outage: say so after reconciling
        #: set by :meth:`run` once the engine's event stream is open
        self.ready = asyncio.Event()

    async def reconcile(self) -> list[ContainerInfo]:
        """Record the current state of every agent container of the workspace on this engine
        (a container of an agent now placed elsewhere is left to that engine's follower)."""
        infos = await asyncio.to_thread(self.runtime.list_engine, self.engine)
        placed = {info.name: self.runtime.engine_of(info.name) for info in infos}
        best: dict[str, ContainerInfo] = {}
        for info in infos:
            if not info.name or placed[info.name] != self.engine:
                continue
            have = best.get(info.name)
            if have is None or (info.running and not have.running):
                best[info.name] = info
        for info in best.values():
            await self._record(info)
        return [best[n] for n in sorted(best)]

    async def run(self, stop_event: asyncio.Event | None = None) -> None:
        """Follow until stopped. When the engine goes away (its event stream ends, or it does
        not answer) an ``engine.unreachable`` event is recorded at once; it is asked again
        every ``ENGINE_RETRY`` s, and once it answers the states are reconciled and
        ``engine.reachable`` is recorded (after the reconcile, so followers of the store see
        the agents' states as the engine left them first)."""
        stopper = asyncio.create_task(stop_event.wait()) if stop_event else None
        try:
            while not self._closed:
                error = await self._follow_once(stopper)
                if error is None or self._closed or (stopper and stopper.done()):
                    return
                await self._engine_event("engine.unreachable", {"error": error[:300]})
                while not self._closed and not (stopper and stopper.done()):
                    if await self._answers():
                        break
                    await asyncio.sleep(ENGINE_RETRY)
                self._back = True
        finally:
            if stopper:
                stopper.cancel()
            self.close()

    async def _answers(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._ping), ENGINE_RETRY * 4)
            return True
        except Exception:
            return False

    def _ping(self) -> None:
        from crowdtui.runtime.engines import PING_TIMEOUT, _ping

        _ping(self.runtime.engines.client(self.engine), PING_TIMEOUT)

    async def _engine_event(self, kind: str, detail: dict[str, Any]) -> None:
        if self.engine != LOCAL:
            await self._remote_engine_event(kind, detail)
            return
        if kind == "engine.unreachable":
            log.warning("the Docker engine does not answer (%s); the store and the hub go on, and the "
                        "agents that ran are started again once it answers", detail.get("error", ""))
        else:
            log.warning("the Docker engine answers again; agent states reconciled")
        try:
            await self.store.append_event(self.actor, kind, "", detail)
        except Exception as exc:  # the store side has its own fault; say it in the log
            log.warning("%s not recorded: %s", kind, exc)

    async def _remote_engine_event(self, kind: str, detail: dict[str, Any]) -> None:
        """A remote engine went away (its agents are ``unreachable``: the others go on) or came
        back (its agents' states were reconciled just before)."""
        from crowdtui.runtime.engines import agents_recorded_on

        log.warning("engine %s %s %s", self.engine,
                    "does not answer" if kind == "engine.unreachable" else "answers again",
                    detail.get("error", ""))
        try:
            await self.store.append_event(self.actor, kind, self.engine, {**detail, "engine": self.engine})
            if kind == "engine.unreachable":
                for name in await asyncio.to_thread(agents_recorded_on, self.runtime.workspace, self.engine):
                    try:
                        await self.store.set_agent_state(name, "unreachable", actor=self.actor,
                                                         detail={"engine": self.engine})
                    except Exception:  # not registered: nothing to say
                        pass
        except Exception as exc:
            log.warning("%s of engine %s not recorded: %s", kind, self.engine, exc)

    async def _follow_once(self, stopper: asyncio.Task | None) -> str | None:
        """Subscribe, reconcile, handle events. None when stopped; why, when the engine went away."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict | None] = asyncio.Queue()
        # Subscribe before reconciling, so nothing that happens in between is missed.
        try:
            stream = await asyncio.to_thread(self._open_stream)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        reader = threading.Thread(target=self._pump, args=(stream, loop, queue),
                                  name="crowdtui-state-events", daemon=True)
        reader.start()
        self.ready.set()
        try:
            try:
                await self.reconcile()
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            if self._back:
                self._back = False
                await self._engine_event("engine.reachable", {})
            while True:
                getter = asyncio.create_task(queue.get())
                waiting = {getter} | ({stopper} if stopper else set())
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    return None
                event = getter.result()
                if event is None:  # the stream ended: the engine went away
                    return "the engine's event stream ended"
                await self._handle(event)
        finally:
            self._close_stream()
            await asyncio.to_thread(reader.join, 5)

    def _close_stream(self) -> None:
        with self._stream_lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a half-closed socket; over ssh:// docker-py refuses to
                _close_ssh_channel(stream)  # cancel ("not supported"): close its channel ourselves

    def close(self) -> None:
        """Stop reading engine events (safe from any thread)."""
        with self._stream_lock:
            self._closed = True
        self._close_stream()

    # ---- internals

    def _open_stream(self):
        filters = {"type": "container", "label": [f"{labels.WORKSPACE}={self.runtime.workspace.id}"],
                   "event": list(WATCHED_ACTIONS)}
        # The engine answers with the response headers before it subscribes this request,
        # so an event in between would be missed; asking for the events since a moment
        # before (the engine replays its recent ones) closes that gap. Replayed events are
        # harmless: each is handled by inspecting what is true now.
        since = int(time.time()) - 1
        stream = self.runtime.engines.client(self.engine).events(decode=True, filters=filters, since=since)
        with self._stream_lock:
            self._stream = stream
        return stream

    def _pump(self, stream, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        try:
            for event in stream:
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except Exception as exc:
            if not self._closed:
                log.warning("reading engine events failed: %s", exc)
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:  # the loop is already closed
                pass

    async def _handle(self, event: dict[str, Any]) -> None:
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        agent = attrs.get(labels.AGENT)
        if not agent or attrs.get(labels.KIND, "agent") != "agent":
            return
        placed = self.runtime.engine_of(agent)
        if placed != self.engine and self.runtime.engines.spec(placed).mode != "swarm":
            return  # a container left on an engine the agent was moved away from (a swarm's
            # tasks are seen by their nodes' engines: runtime.info finds the one that runs)
        # Whatever happened, the container's inspect output says what is true now (for a
        # removed container: the agent's newest remaining one, if any).
        try:
            info = await self.runtime.info(agent)
        except CrowdError as exc:  # the engine hiccuped; the next event or reconcile catches up
            log.warning("could not inspect %s after %s: %s", agent, event.get("Action"), exc)
            return
        if info is None:
            info = self._gone(agent, event)
        if info is not None:
            await self._record(info)

    def _gone(self, agent: str, event: dict[str, Any]) -> ContainerInfo | None:
        """The agent's last container was removed before we could inspect it: judge by the event."""
        action = str(event.get("Action") or event.get("status") or "").split(":", 1)[0]
        if action not in ("die", "destroy", "kill", "stop"):
            return None
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        cid = (event.get("Actor") or {}).get("ID") or event.get("id") or ""
        code = attrs.get("exitCode")
        code = int(code) if code is not None and str(code).lstrip("-").isdigit() else None
        fake = {"Id": cid, "State": {"Status": "exited", "ExitCode": code if code is not None else 0,
                                      "OOMKilled": False},
                "Config": {"Labels": {labels.AGENT: agent}, "Image": attrs.get("image", "")}}
        return info_from_attrs(fake, self.runtime.stopped_container_id(agent))

    async def _record(self, info: ContainerInfo) -> None:
        if not await record_state(self.store, info, actor=self.actor) and info.state != "created":
            log.info("container of unregistered agent %s: state %s not recorded", info.name, info.state)


def _close_ssh_channel(stream) -> None:
    """End an events stream read over ssh:// (paramiko): its channel closed, the read returns."""
    fp = getattr(getattr(getattr(getattr(stream, "_response", None), "raw", None), "_fp", None), "fp", None)
    channel = getattr(fp, "channel", None)
    if channel is not None:
        try:
            channel.close()
        except Exception:
            pass


async def record_state(store, info: ContainerInfo, *, actor: str = "runtime") -> bool:
    """Record one container's state now (what the CLI does after up/down). False if unregistered."""
    from qms.errors import NotFound

    if not info.name or info.state == "created":
        return False
    try:
        await store.set_agent_state(info.name, info.state, detail=info.state_detail(), actor=actor)
        return True
    except NotFound:
        return False


async def record_action(store, action: str, name: str, *, actor: str = OPERATOR,
                        detail: dict[str, Any] | None = None) -> int:
    """An operator's (or a service's) request to the runtime, as a ``runtime.<action>`` event.

    States say what the engine did; this says who asked (``crowdtui up`` as the operator,
    ``--as`` someone, the hub's launch policy...).
    """
    return await store.append_event(actor, f"runtime.{action}", name, detail or {})


def start_following(runtime: Runtime, store, *, actor: str = "runtime"):
    """Start a :class:`StateFollower` task; returns ``(follower, stop)`` where ``await stop()``
    ends it. The one way a host process (``serve``, ``crowdtui hub``) follows container
    states, so its supervisor sees crashes and restarts wherever it runs."""
    followers = [StateFollower(runtime, store, actor=actor, engine=name) for name in runtime.engines.names()]
    halt = asyncio.Event()
    tasks = [asyncio.create_task(f.run(halt), name=f"state-follower-{f.engine}") for f in followers]

    async def stop() -> None:
        halt.set()
        for follower in followers:
            follower.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return followers[0], stop
