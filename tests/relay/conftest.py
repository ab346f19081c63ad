"""Fixtures for the relay: the real hub, the real relay container on the local engine with
named volumes for its agents, and agent containers that mount only their own volume.

The local engine stands in for a remote one: the relay reaches the hub over TCP+TLS at the
engine's bridge gateway, exactly as it would across machines, and nothing of the host's
folders is mounted into the relay or the agents.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crowdtui.roster import AgentDef
from tests.waiting import wait_for

ENGINE = "relay-test"
PLACED = {"alpha", "beta"}  # on ENGINE
OTHER = "other-box"  # a second engine, where gamma runs
PLACEMENT = {ENGINE: PLACED, OTHER: {"gamma"}}
CREW = ("alpha", "beta", "gamma")


def definitions_of(workspace, egress_port: int | None = None) -> dict[str, AgentDef]:
    defs = {}
    for name in CREW:
        extra = {}
        if name in ("beta", "gamma") and egress_port is not None:
            extra = {"network": "allowlist", "egress": (f"127.0.0.1:{egress_port}",)}
        defs[name] = AgentDef(name=name, file=workspace.agents_dir / name / "AGENT.md", rel_path=name, tier=0,
                              parent=None, children=(), description=f"the {name}", **extra)
    return defs


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def outside():
    """An HTTP server on the host's loopback (a destination in beta's egress list); its port."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    for name in CREW:
        await s.upsert_agent(name, path=name, tier=0, parent=None, description=f"the {name}")
    yield s
    await s.close()


def gateway(docker_client) -> str:
    """Where containers on the engine's default network reach the host (the hub)."""
    return docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]["Gateway"]


async def start_hub(workspace, store, defs, host: str, port: int = 0, limits=None):
    from crowdtui.hub.hub import Hub

    hub = Hub(workspace, store, definitions=defs.get, limits=limits)
    await hub.start()
    for name in CREW:
        await hub.open_door(name)
    await hub.open_relay_door(lambda engine: PLACEMENT.get(engine, set()), host=host, port=port)
    return hub


@pytest.fixture
async def local_hub(workspace, store):
    """The hub with its relay door on 127.0.0.1 (no relay container: tests speak for a relay)."""
    hub = await start_hub(workspace, store, definitions_of(workspace, egress_port=9), "127.0.0.1")
    yield hub
    await hub.stop()


@dataclass
class Relayed:
    workspace: object
    store: object
    client: object
    hub: object
    defs: dict
    host: str
    outside: int
    port: int
    mountpoint: str = ""
    volumes: dict = field(default_factory=dict)

    def socket(self, agent: str, door: str = "mcp") -> Path:
        return Path(self.mountpoint) / "agents" / agent / f"{door}.sock"

    async def socket_ready(self, agent: str, door: str = "mcp") -> Path:
        path = self.socket(agent, door)
        await wait_for(lambda: path.is_socket(), 60, f"the relay to hold {agent}'s {door} socket ({path})")
        return path


@pytest.fixture
async def relayed(workspace, store, docker_client, agent_image, outside):
    """The hub with its relay door, the engine's relay container, and alpha's and beta's IPC volumes."""
    from crowdtui.hub.relay_credentials import issue_engine_credential
    from crowdtui.runtime.relay_container import (
        agent_ipc_volume_name,
        ensure_agent_ipc_volume,
        find_relay,
        relay_volume_name,
        start_relay,
        stop_relay,
    )

    defs = definitions_of(workspace, outside)
    host = gateway(docker_client)
    hub = await start_hub(workspace, store, defs, host)
    r = Relayed(workspace, store, docker_client, hub, defs, host, outside, hub.relay.address[1])
    credential = issue_engine_credential(workspace, ENGINE)
    try:
        await asyncio.to_thread(start_relay, docker_client, workspace, ENGINE, f"{host}:{r.port}", credential,
                                agent_image)
        for agent in sorted(PLACED):
            r.volumes[agent] = await asyncio.to_thread(ensure_agent_ipc_volume, docker_client, workspace, ENGINE, agent)
        r.mountpoint = docker_client.volumes.get(relay_volume_name(workspace, ENGINE)).attrs["Mountpoint"]
        yield r
    finally:
        if r.hub is not None:
            await r.hub.stop()
        container = find_relay(docker_client, workspace, ENGINE)
        if container is not None:
            print("relay log:\n" + container.logs(tail=40).decode(errors="replace"))
        for c in docker_client.containers.list(all=True, filters={"label": f"crowdtui.workspace={workspace.id}"}):
            await asyncio.to_thread(c.remove, force=True)
        for agent in CREW:
            try:
                docker_client.volumes.get(agent_ipc_volume_name(workspace, agent)).remove(force=True)
            except Exception:
                pass
        await asyncio.to_thread(stop_relay, docker_client, workspace, ENGINE, remove_volume=True)


def run_agent(client, workspace, image: str, agent: str, volume: str, command=("sleep", "600"), env=None):
    """An agent container hardened as the runtime makes them, with only its own IPC volume at /run/crowd
    and no network: the relay's socket is its only way out."""
    from docker.types import Mount

    from crowdtui.runtime import labels

    return client.containers.run(
        image, list(command), detach=True, name=f"i19-relay-{agent}-{workspace.id[:8]}",
        labels={**labels.for_agent(workspace, agent), "crowdtui.test": "i19-relay"},
        user="1000:1000", read_only=True, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
        network_mode="none", tmpfs={"/tmp": "rw,size=16m"}, init=True,
        environment={"CROWD_BRIDGE_QUIET": "1", **(env or {})},
        mounts=[Mount("/run/crowd", volume, type="volume")])


BRIDGE_SESSION = """
import json, subprocess, sys
lines = [
 {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
  "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
 {"jsonrpc": "2.0", "method": "notifications/initialized"},
] + [json.loads(a) for a in sys.argv[1:]]
p = subprocess.run(["crowd-mcp-bridge"], input="".join(json.dumps(l) + "\\n" for l in lines).encode(),
                   capture_output=True, timeout=60)
sys.stdout.write(p.stdout.decode())
"""


def bridge_session(container, *requests: dict) -> list[dict]:
    """Run the agent image's crowd-mcp-bridge inside ``container`` with these JSON-RPC requests after
    the MCP handshake; the answers, by id."""
    import json

    result = container.exec_run(["python3", "-c", BRIDGE_SESSION, *[json.dumps(r) for r in requests]],
                                user="1000:1000")
    assert result.exit_code == 0, result.output.decode(errors="replace")
    answers = [json.loads(line) for line in result.output.decode().splitlines() if line.strip()]
    return answers

