"""What the console asks of the rest of crowdtui: the runtime, the hub, the roster, logs
and terminal sessions. Each function here is one call the app's workers make, so the
app itself never touches the Docker SDK or SQL, and the seams are in one place.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, AsyncIterator

log = logging.getLogger(__name__)


async def _maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# --------------------------------------------------------------------------- store


# --------------------------------------------------------------------------- roster


def load_roster(workspace, previous: Any = None) -> Any:
    """The roster on disk (a ``crowdtui.roster.Roster``); blocking. With ``previous``, an
    agent whose file turned bad keeps its last good definition."""
    from crowdtui.roster import load_roster as _load

    return _load(workspace, previous)


async def sync_registry(store, roster: Any) -> None:
    """Make the store's registry match the roster (agent.added/changed/removed events)."""
    from crowdtui.roster import sync_roster

    await sync_roster(store, roster)


async def roster_changes(workspace, stop: asyncio.Event | None = None) -> AsyncIterator[None]:
    """Yields after every change to the roster on disk."""
    from crowdtui.roster import watch_roster

    async for _update in watch_roster(workspace, stop_event=stop):
        yield None


# --------------------------------------------------------------------------- runtime


def connect_runtime(workspace) -> tuple[Any, Any]:
    """(Runtime, docker client) — blocking; run in a thread."""
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.engine import connect

    client = connect()
    return Runtime(workspace, client=client), client


async def adopt(runtime) -> list[Any]:
    return list(await _maybe(runtime.adopt()) or [])


def _name_of(info: Any) -> str | None:
    for attr in ("agent", "name"):
        v = getattr(info, attr, None)
        if isinstance(v, str) and v:
            return v
    return None


async def list_containers(runtime) -> dict[str, Any]:
    """name -> ContainerInfo for this workspace's agent containers."""
    infos = await _maybe(runtime.list())
    out: dict[str, Any] = {}
    for info in infos or []:
        name = _name_of(info)
        if name:
            out[name] = info
    return out


async def lifecycle(runtime, op: str, name: str, agent_def: Any, store: Any) -> Any:
    """Start, stop or restart an agent as the operator, through the agent-lifecycle API
    (``crowdtui.runtime.lifecycle``), which records ``runtime.<op>`` with the operator as actor."""
    from crowdtui.runtime import lifecycle as agent_lifecycle

    return await agent_lifecycle.act(runtime, store, op, name, agent_def, actor=agent_lifecycle.OPERATOR)


def collect_stats(runtime) -> dict[str, Any]:
    """name -> AgentStats (``cpu`` percent, ``memory`` bytes) of running agents; blocking."""
    from crowdtui.runtime.stats import collect_sync

    return {st.name: st for st in collect_sync(runtime)}


async def follow_states(runtime, store, stop: asyncio.Event | None = None) -> None:
    """Keep the registry's agent states in step with the engine (crash, stop, OOM...).

    Two followers of one workspace write each change once, so this runs even when a
    ``crowdtui serve`` follows too."""
    from crowdtui.runtime.state import StateFollower

    followers = [StateFollower(runtime, store, engine=name) for name in runtime.engines.names()]
    await asyncio.gather(*(f.run(stop) for f in followers))


# --------------------------------------------------------------------------- terminals


def session_pool(client, runtime=None) -> Any:
    """One shared PTY session per container for this app (any number of viewers each), each
    on the engine its container runs on when ``runtime`` is given."""
    from crowdtui.runtime.pty import SessionPool

    return SessionPool(client, resolve=runtime.client_for_container if runtime is not None else None)


async def shared_session(pool, container_id: str) -> Any:
    """The agent's shared PTY session, opened on first use."""
    return await _maybe(pool.get(container_id))


async def exec_session(client, container_id: str, runtime=None) -> Any:
    """A fresh shell in the container (bash where present), on the engine it runs on."""
    from crowdtui.runtime.pty import open_exec

    if runtime is not None:
        client = await asyncio.to_thread(runtime.client_for_container, container_id)
    return await _maybe(open_exec(client, container_id))


async def close_session(session) -> None:
    close = getattr(session, "close", None)
    if close is not None:
        try:
            await _maybe(close())
        except Exception as exc:
            log.debug("closing session: %s", exc)


async def close_pool(pool) -> None:
    """Detach the app's viewers; the agents keep running."""
    if pool is not None:
        try:
            await _maybe(pool.close())
        except Exception as exc:
            log.debug("closing pool: %s", exc)


# --------------------------------------------------------------------------- logs


async def follow_logs(runtime, names: list[str], *, tail: int = 50,
                      stop: asyncio.Event | None = None) -> AsyncIterator[list[tuple[str, str]]]:
    """Batches of (agent, line) from the named agents' containers, merged as they come."""
    from crowdtui.runtime.logs import follow_logs as _follow

    if not names:
        return
    batch: list[tuple[str, str]] = []
    async for line in _follow(runtime, names, tail=tail, stop_event=stop):
        batch.append((line.agent, line.text))
        if len(batch) >= 200:
            yield batch
            batch = []
        await asyncio.sleep(0)
        if batch:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------- hub


async def start_hub(workspace, store) -> tuple[str, str, Any]:
    """Use a running host of the workspace if there is one, else start one in-process: the
    same host as ``crowdtui serve`` and ``crowdtui hub`` (``crowdtui.host``: hub with
    dispatch's tools, policies, dispatch). The console follows the roster and container states
    itself (it shows them), and hands the host its runtime once connected
    (``host.run_policies(runtime, pool)``).

    Returns (mode, detail, host): mode ``own`` (this app runs it; ``host`` set), ``other``
    (another process runs it) or ``none`` (detail says why).
    """
    from crowdtui.host import Host, HostAlreadyRunning, HostOptions

    host = Host(workspace, store, HostOptions(runtime=False, follow_roster=False, follow_states=False))
    try:
        await host.start()
    except HostAlreadyRunning as exc:
        return "other", f"pid {exc.pid}" if exc.pid else str(exc), None
    except Exception as exc:
        return "none", f"{exc}", None
    return "own", "", host


async def open_door(hub, name: str) -> None:
    """Open the agent's MCP socket before its container starts (so it finds it at once);
    ``hub`` is the app's own host."""
    try:
        await hub.open_door(name)
    except Exception as exc:  # the hub also opens it when the agent shows as running
        log.warning("door for %s: %s", name, exc)


async def shutdown(app) -> None:
    """Quitting the app: end its exec shells, detach terminals and stop our own hub.
    Agents keep running."""
    for session in list(getattr(app, "_exec_sessions", {}).values()):
        await close_session(session)
    closer = getattr(app, "close_acp_agents", None)
    if closer is not None:  # mode: acp adapters end; their agents keep running
        try:
            await closer()
        except Exception as exc:
            log.debug("closing ACP agents: %s", exc)
    await close_pool(getattr(app, "session_pool", None))
    app.session_pool = None
    hub = getattr(app, "hub", None)  # the app's own host
    if hub is not None:
        try:
            await hub.stop()
        except Exception as exc:
            log.debug("host stop: %s", exc)
        app.hub = None
    client = getattr(app, "docker_client", None)
    if client is not None:
        try:
            await asyncio.to_thread(client.close)
        except Exception:
            pass
    store = getattr(app, "store", None)
    if store is not None and getattr(app, "_own_store", False):
        try:
            await store.close()
        except Exception:
            pass
