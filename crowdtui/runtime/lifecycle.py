"""The one way an agent's container is started, stopped, restarted or removed.

Every caller goes through here: the CLI (``crowdtui up/down/restart``) and the console as
the operator, the hub's launch policy and supervisor, and the engine's launcher. Each
call asks the runtime, then records who asked as a ``runtime.<action>`` event (or
``runtime.<action>_failed`` with the error) and the container's new state, so the
operator sees every start and stop with its actor, whoever made it.

This is the seam where a later engine choice (another container engine) and restart
policies plug in: callers name an action and an actor, never the Docker SDK.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from qms.names import OPERATOR  # the actor of the console's and the CLI's actions (``--as`` overrides)

from crowdtui.errors import CrowdError
from crowdtui.runtime.state import record_action, record_state

log = logging.getLogger(__name__)

__all__ = ["OPERATOR", "act", "register", "remove", "restart", "start", "stop"]
ACTIONS = ("start", "stop", "restart", "remove")


def _detail(info: Any, extra: dict[str, Any] | None) -> dict[str, Any]:
    detail = {"container": info.short_id, "image": info.image, "state": info.state}
    if extra:
        detail.update(extra)
    return detail


async def register(store: Any, agent: Any, *, actor: str) -> None:
    """Put the roster's definition in the registry (so its state can be recorded)."""
    await store.upsert_agent(agent.name, path=agent.rel_path, tier=agent.tier, parent=agent.parent,
                             description=agent.description, actor=actor)


async def _record(store: Any, action: str, name: str, actor: str, info: Any,
                  extra: dict[str, Any] | None) -> None:
    """The action happened: a store that refuses the record must not make it look failed."""
    try:
        await record_action(store, action, name, actor=actor, detail=_detail(info, extra))
        if action != "remove":
            await record_state(store, info, actor=actor)
    except Exception as exc:
        log.warning("%s of %s done but not recorded (%s); the state follower records its state", action, name, exc)


async def _failed(store: Any, action: str, name: str, actor: str, exc: BaseException,
                  extra: dict[str, Any] | None) -> None:
    try:
        await record_action(store, f"{action}_failed", name, actor=actor,
                            detail={**(extra or {}), "error": str(exc)[:500] or type(exc).__name__})
    except Exception as record_exc:  # the store's own fault must not hide the engine's
        log.warning("%s of %s failed (%s) and was not recorded: %s", action, name, exc, record_exc)


async def _run(store: Any, action: str, name: str, actor: str, reason: str | None,
               call: Callable[[], Awaitable[Any]]) -> Any:
    """Do ``call`` and record it: ``runtime.<action>``, or ``runtime.<action>_failed``."""
    extra = {"reason": reason} if reason else None
    try:
        info = await call()
    except Exception as exc:
        await _failed(store, action, name, actor, exc, extra)
        raise
    await _record(store, action, name, actor, info, extra)
    return info


async def start(runtime: Any, store: Any, agent: Any, *, actor: str, reason: str | None = None,
                register_first: bool = False) -> Any:
    """Start ``agent`` (a roster ``AgentDef``); an agent that already runs is left as it is.
    Returns its ``ContainerInfo``. ``reason`` goes into the event (a policy's why)."""
    if register_first:
        await register(store, agent, actor=actor)
    return await _run(store, "start", agent.name, actor, reason, lambda: runtime.start(agent))


async def stop(runtime: Any, store: Any, name: str, *, actor: str, reason: str | None = None,
               timeout: int = 10) -> Any:
    """Stop ``name``'s container (SIGTERM, then SIGKILL after ``timeout`` s); its home stays."""
    return await _run(store, "stop", name, actor, reason, lambda: runtime.stop(name, timeout=timeout))


async def restart(runtime: Any, store: Any, agent: Any, *, actor: str, reason: str | None = None,
                  register_first: bool = False) -> Any:
    """Replace ``agent``'s container with a fresh one from its current definition."""
    if register_first:
        await register(store, agent, actor=actor)
    return await _run(store, "restart", agent.name, actor, reason, lambda: runtime.restart(agent))


async def remove(runtime: Any, store: Any, name: str, info: Any, *, actor: str) -> None:
    """Remove ``name``'s stopped container (``info``: its last ``ContainerInfo``)."""
    try:
        await runtime.remove(name)
    except Exception as exc:
        await _failed(store, "remove", name, actor, exc, None)
        raise
    await _record(store, "remove", name, actor, info, None)


async def act(runtime: Any, store: Any, action: str, name: str, agent: Any = None, *, actor: str,
              reason: str | None = None) -> Any:
    """``start``/``stop``/``restart`` by name (the console's and policies' entry)."""
    if runtime is None:
        raise CrowdError(f"cannot {action} {name}: no Docker engine is connected; "
                         "check `docker info` and start the console again")
    if action == "stop":
        return await stop(runtime, store, name, actor=actor, reason=reason)
    if action in ("start", "restart"):
        if agent is None:
            raise CrowdError(f"cannot {action} {name}: it is not in the roster (agents/); "
                             "add its AGENT.md or fix the roster problems first")
        fn = start if action == "start" else restart
        return await fn(runtime, store, agent, actor=actor, reason=reason)
    raise CrowdError(f"unknown action {action!r}; use one of start, stop, restart")
