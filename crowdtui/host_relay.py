"""The host's wiring of the relay: agents on remote engines reach the hub through their engine's relay.

Two halves meet here (the runtime cannot import the hub):

* the hub's side — ``hub.open_relay_door(placed_on)``: a relay is trusted only for the agents
  whose placement record (``.crowd/run/engine/<agent>``, ``crowdtui.runtime.engines``) names
  its engine; the record is read anew at each stream and each SERVE poll;
* the runtime's side — ``runtime.door = RelayHookup(address, credential)``: before an agent
  starts on a remote engine the engine's relay is started there (with the engine's own TLS
  credential, issued on first use) and the agent's ``/run/crowd`` is its relay volume; its hub
  doors (MCP, egress) are opened and held by the relay before it starts, and its secrets are put
  on offer at the hub for the relay's one ``secrets`` stream (``crowdtui.hub.relay_secrets``).

The relay door listens on ``[hub] relay_host`` / ``relay_port``; an engine's relay reaches it
at ``[engines.NAME] relay_address`` when given, else at ``[hub] relay_address`` (``HOST:PORT``),
else at the listening address. Engines that reach the host at different addresses (other
networks, NATs) each get their own ``relay_address`` and the door listens on ``0.0.0.0``
(safe: only a relay holding a current engine credential gets past its TLS handshake). It is
opened only when crowd.toml names a remote engine that is not a Swarm. A Swarm entry has no
relay of its own: its nodes are engines of crowd.toml, each with its relay, and a Swarm agent is
served by the relay of the node its task runs on (``crowdtui.runtime.swarm``). Engines added
while the host runs need a restart.

Layer: ``host`` (above ``hub`` and ``runtime``).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def relayed_engines(workspace) -> dict[str, str]:
    """The engines that run a relay (remote, not a Swarm entry: a Swarm's nodes are engines of
    their own), each with the network its relay joins (``[engines.NAME] relay_network``)."""
    from crowdtui.engine_config import LOCAL, engines_of

    return {name: spec.relay_network for name, spec in engines_of(workspace.config, workspace.root).items()
            if name != LOCAL and spec.mode != "swarm"}


def relay_addresses(workspace) -> dict[str, str]:
    """The relayed engines with their own ``[engines.NAME] relay_address``."""
    from crowdtui.engine_config import LOCAL, engines_of

    return {name: spec.relay_address for name, spec in engines_of(workspace.config, workspace.root).items()
            if name != LOCAL and spec.mode != "swarm" and spec.relay_address}


def placed_on(workspace):
    """``engine -> set of agents running there`` from the placement records (cheap: two small
    folders); the relay door's trust. A Swarm agent counts for the node engine its task was last
    seen on (``crowdtui.runtime.engines.agents_served_on``), so after a move only the new node's
    relay speaks for it."""
    from crowdtui.runtime.engines import agents_served_on

    def agents_on_engine(engine: str) -> set[str]:
        return set(agents_served_on(workspace, engine))

    return agents_on_engine


def relay_address(workspace, hub) -> str:
    """``HOST:PORT`` the engines reach the hub's relay door at."""
    given = workspace.setting("hub", "relay_address", None)
    if given:
        return str(given)
    host, port = hub.relay.address[:2]
    return f"{host}:{port}"


async def open_relay(workspace, hub, log_line=None) -> bool:
    """Open the hub's relay door when some engine needs it; True when it is open."""
    if not relayed_engines(workspace):
        return False
    relay = await hub.open_relay_door(placed_on(workspace))
    if log_line is not None:
        host, port = relay.address[:2]
        if not workspace.setting("hub", "relay_port", 0):
            log_line(f"relay door on {host}:{port} (any free port: set [hub] relay_port so relays "
                     "find it again after a restart)")
        else:
            log_line(f"relay door on {host}:{port}")
        from crowdtui.engine_config import WILDCARDS

        if host in WILDCARDS and not workspace.setting("hub", "relay_address", None):
            lost = sorted(set(relayed_engines(workspace)) - set(relay_addresses(workspace)))
            if lost:
                log_line(f"the relay door listens on {host}: engine(s) {', '.join(lost)} need "
                         "[engines.NAME] relay_address (or [hub] relay_address) before their agents start")
    return True


def hookup(workspace, hub) -> Any:
    """The runtime's seam for the relay (``Runtime.door``), or None when the hub has no relay door."""
    if hub is None or getattr(hub, "relay", None) is None:
        return None
    from crowdtui.hub.relay_credentials import engine_credential
    from crowdtui.runtime.relay_container import RelayHookup

    return _hand_offs(hub, RelayHookup(relay_address(workspace, hub),
                       lambda engine: engine_credential(workspace, engine, issue=True),
                       networks=relayed_engines(workspace), addresses=relay_addresses(workspace)))


DOORS_WAIT = 10.0  # seconds a start waits for the engine's relay to be told to hold the agent's doors


def _hand_offs(hub, door):
    """Give the runtime's seam the hub's halves that run on the hub's loop, called from the
    runtime's starting thread: secrets on offer (thread-safe already) and the doors opened."""
    import asyncio

    relay = hub.relay
    door.secrets = lambda engine, agent, payload, names: relay.offer_secrets(agent, engine, payload, names)

    def doors(engine: str, agent: str) -> None:
        loop = relay.loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(hold_doors(hub, engine, agent), loop)
        try:
            asyncio.get_running_loop()
            return  # on the hub's own loop (not a runtime thread): never block it; the open goes on
        except RuntimeError:
            pass
        try:
            future.result(DOORS_WAIT + 5)
        except Exception as exc:  # the hub opens the doors anyway once it sees the agent running
            log.warning("the doors of %s on engine %s: %s", agent, engine, exc)

    door.doors = doors
    return door


async def hold_doors(hub, engine: str, agent: str, timeout: float = DOORS_WAIT) -> bool:
    """Open ``agent``'s hub doors (MCP, and egress for ``network: allowlist``) and wait until the
    relay of ``engine`` was told to hold them; False when it was not within ``timeout`` (not linked
    yet: it gets them when it links) or the doors could not be opened."""
    import asyncio
    import time

    try:
        await hub.open_door(agent)
    except Exception as exc:
        log.warning("could not open the doors of %s before its start: %s", agent, exc)
        return False
    relay = hub.relay
    relay.refresh()
    wanted = {"mcp"} | ({"egress"} if agent in hub.egress.doors else set())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link = relay.links.get(engine)
        if link is not None and wanted <= set((link.served or {}).get(agent, ())):
            return True
        await asyncio.sleep(0.05)
    return False


def retire_engine(workspace, spec) -> dict[str, Any]:
    """An engine removed (``crowdtui engine rm``): its relay credential is revoked (the hub refuses
    its relay from the next connection on) and, when the engine answers, its relay container and
    volume are removed. Blocking."""
    from crowdtui.hub.relay_credentials import revoke_engine_credential
    from crowdtui.runtime.engines import connect_spec
    from crowdtui.runtime.relay_container import stop_relay

    out: dict[str, Any] = {"credential_revoked": revoke_engine_credential(workspace, spec.name),
                           "relay_removed": False, "relay_error": None}
    if spec.mode == "swarm":
        return out
    try:
        client = connect_spec(spec, timeout=15)
    except Exception as exc:
        out["relay_error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        return out
    try:
        out["relay_removed"] = stop_relay(client, workspace, spec.name, remove_volume=True)
    except Exception as exc:
        out["relay_error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    finally:
        client.close()
    return out
