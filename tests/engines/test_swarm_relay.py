"""A Swarm agent's hub door goes through the relay of the node its task runs on.

Real parts: a two-node Swarm (``engine_harness.start_swarm``: two dockerd, each in its own network
namespace, joined over a veth pair of their own), both nodes named in crowd.toml as plain engines
(``n1`` the manager, ``n2`` the worker, each with its own ``relay_address``: the host's end of its
veth pair) beside the swarm entry ``sw``; the host assembly (``crowdtui.host.Host``) with its relay
door on 0.0.0.0; the relay container the runtime starts on each node; crowd-mcp-bridge inside the
task's container. The agent runs first on the worker, is served by the worker's relay only (a relay
holding the manager's real credential is refused a stream for it), then the worker leaves the
swarm, the task runs on the manager and its door works through the manager's relay — and the
worker's relay no longer speaks for it.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.workspace import load_workspace
from tests.relay.conftest import bridge_session
from tests.waiting import wait_for

from .conftest import write_agent
from .engine_harness import start_swarm
from .test_cross_engine import _call, _free_port
from .test_three_engines import _preload, relays_run, start_host, wind_down

pytestmark = pytest.mark.docker

AGENT = "swarmy"


@pytest.fixture
def swarm_host_ws(workspace, docker_client, agent_image, monkeypatch):
    """The swarm, and the workspace naming its nodes (with their relays' addresses) and the swarm;
    ``(workspace, manager, worker, relay door port)``."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    manager, worker = start_swarm()
    try:
        for engine in (manager, worker):
            _preload(engine, docker_client, agent_image)
        port = _free_port("0.0.0.0")
        cfg = workspace.root / "crowd.toml"
        text = cfg.read_text()
        assert text.count("\n[hub]\n") == 1
        text = text.replace("\n[hub]\n", f'\n[hub]\nrelay_host = "0.0.0.0"\nrelay_port = {port}\n')
        # the test engines run without iptables: each relay joins its engine's host network and
        # reaches the hub at the host's end of that engine's veth pair
        for name, engine in (("n1", manager), ("n2", worker)):
            text += f'\n{engine.toml(name)}relay_network = "host"\nrelay_address = "{engine.host_ip}:{port}"\n'
        text += "\n" + manager.toml("sw") + 'mode = "swarm"\n'
        cfg.write_text(text)
        yield load_workspace(workspace.root), manager, worker, port
    finally:
        worker.teardown()
        manager.teardown()


def _ipc_device(name: str, engine, ws) -> tuple[str | None, str]:
    """(the device the agent's IPC volume is bound to, the relay volume's mountpoint) on ``engine``."""
    from crowdtui.runtime.relay_container import agent_ipc_volume_name, relay_volume_name

    client = engine.local_client()
    try:
        volume = client.volumes.get(agent_ipc_volume_name(ws, AGENT))
        mountpoint = client.volumes.get(relay_volume_name(ws, name)).attrs["Mountpoint"]
        return (volume.attrs.get("Options") or {}).get("device"), mountpoint
    finally:
        client.close()


async def _calls_via(host) -> set:
    await host.hub.audit.drain()
    return {e.detail.get("via") for e in await host.store.events_after(0, limit=10000, kinds=["hub.call"])
            if e.actor == AGENT}


async def _refused_to(hub, ws, engine: str, relay_engine) -> None:
    """A relay holding ``engine``'s real credential is not told to serve the agent and is refused a
    stream for it. The real relay of that engine is paused meanwhile (it would reconnect and
    replace the hand-written one's link), and let go after."""
    from crowdtui.hub import relay_wire as wire
    from crowdtui.hub.relay_credentials import engine_credential
    from crowdtui.runtime.relay_container import find_relay
    from tests.relay.test_relay_trust import HandRelay

    client = relay_engine.local_client()
    real = find_relay(client, ws, engine)
    hand_link = None
    await asyncio.to_thread(real.pause)
    try:
        hand = await HandRelay.connect(("127.0.0.1", hub.relay.address[1]), engine_credential(ws, engine),
                                       ws.root / f"hand-{engine}")
        try:
            await hand.send(wire.control(wire.HELLO, engine=engine, version=1))
            await hand.expect(wire.WELCOME)
            hand_link = hub.relay.links.get(engine)
            _, _, served = await hand.expect(wire.SERVE)
            assert AGENT not in json.loads(served)["agents"]
            await hand.send(wire.control(wire.OPEN, 1, agent=AGENT, door="mcp"))
            _, sid, payload = await hand.expect(wire.REFUSED)
            assert sid == 1 and "not placed on engine" in json.loads(payload)["reason"]
        finally:
            hand.close()
    finally:
        await asyncio.to_thread(real.unpause)
        client.close()
    await wait_for(lambda: hub.relay.links.get(engine) not in (None, hand_link), 60,
                   f"the relay of {engine} linked again")


async def test_a_swarm_agent_reaches_the_hub_through_its_nodes_relay_and_after_a_move(
        swarm_host_ws, docker_client, agent_image):
    from crowdtui.runtime.engines import recorded_node
    from crowdtui.runtime.relay_container import agent_ipc_volume_name

    ws, manager, worker, port = swarm_host_ws
    nodes = {"n1": manager, "n2": worker}
    write_agent(ws, AGENT, "engine: sw\ncommand: [sh]\nrestart: always\n", "Runs on a swarm.\n")
    ws = load_workspace(ws.root)
    mc = manager.local_client()
    me = mc.info()["Swarm"]["NodeID"]
    mc.nodes.get(me).update({"Availability": "pause", "Role": "manager"})  # the first task: the worker's
    runtime, host = await start_host(ws, docker_client, port)
    try:
        hub = host.hub
        info = await lifecycle.start(runtime, host.store, load_roster(ws).get(AGENT), actor="operator")
        assert info.state == "running" and info.engine == "sw"
        assert runtime._seen[info.container_id] == "n2" and recorded_node(ws, AGENT) == "n2"

        # a relay on each node, and the agent's IPC volume on each, bound to that node's relay
        relays_run(ws, nodes, {name: f"{engine.host_ip}:{port}" for name, engine in nodes.items()})
        for name, engine in nodes.items():
            device, mountpoint = _ipc_device(name, engine, ws)
            assert device == f"{mountpoint}/agents/{AGENT}"
        service = mc.services.list()[0]
        mounts = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
        assert {m["Target"]: m["Source"] for m in mounts}["/run/crowd"] == agent_ipc_volume_name(ws, AGENT)

        await wait_for(lambda: {"n1", "n2"} <= set(hub.relay.links), 60, "both nodes' relays linked")
        assert await hub.relay.placed("n2") == {AGENT}
        assert await hub.relay.placed("n1") == set() and await hub.relay.placed("sw") == set()
        await wait_for(lambda: AGENT in (hub.relay.links["n2"].served or {}), 30, "the worker's relay serving it")

        # a hub tool from inside the task's container, through the worker's relay
        task = await runtime.container(AGENT)
        answers = {a.get("id"): a for a in await asyncio.to_thread(
            bridge_session, task, _call(2, "send_message", to="operator", body="from the worker"))}
        assert "error" not in answers[2] and not answers[2]["result"].get("isError"), answers[2]
        assert await _calls_via(host) == {"relay:n2"}

        # the manager's relay, with its real credential, cannot speak for the worker's agent
        await _refused_to(hub, ws, "n1", manager)

        # the worker leaves: the task moves to the manager, whose relay serves it from then on
        mc.nodes.get(me).update({"Availability": "active", "Role": "manager"})
        wc = worker.local_client()
        await asyncio.to_thread(wc.swarm.leave, True)
        wc.close()

        async def moved():
            now = await runtime.info(AGENT)
            return now if now is not None and now.running and now.container_id != info.container_id else None

        now = await wait_for(moved, 120, "the service running on the manager's node")
        assert runtime._seen[now.container_id] == "n1" and recorded_node(ws, AGENT) == "n1"
        assert await hub.relay.placed("n1") == {AGENT} and await hub.relay.placed("n2") == set()
        await wait_for(lambda: AGENT in (hub.relay.links["n1"].served or {}), 30, "the manager's relay serving it")
        await wait_for(lambda: AGENT not in (hub.relay.links["n2"].served or {"?": 1}), 30,
                       "the worker's relay told to drop it")
        task = await runtime.container(AGENT)
        answers = {a.get("id"): a for a in await asyncio.to_thread(
            bridge_session, task, _call(2, "send_message", to="operator", body="from the manager"))}
        assert "error" not in answers[2] and not answers[2]["result"].get("isError"), answers[2]
        assert [(m.sender, m.body) for m in await host.store.inbox("operator")] == [
            (AGENT, "from the worker"), (AGENT, "from the manager")]
        assert await _calls_via(host) == {"relay:n2", "relay:n1"}

        # the worker's relay, with its real credential, no longer speaks for it
        await _refused_to(hub, ws, "n2", worker)

        await lifecycle.stop(runtime, host.store, AGENT, actor="operator", timeout=2)
        assert await runtime.remove(AGENT) is True
        assert mc.services.list() == []
        client = manager.local_client()
        try:
            assert agent_ipc_volume_name(ws, AGENT) not in {v.name for v in client.volumes.list()}
        finally:
            client.close()
    finally:
        mc.close()
        await wind_down(host, runtime, ws, nodes, [AGENT])


def test_a_node_record_holds_only_while_the_agent_stays_on_its_swarm(workspace):
    """The records behind the relay door's trust: a node engine speaks for a Swarm agent only while
    the agent's placement names that swarm and its task was last seen on that node; the swarm
    entry itself speaks for nobody."""
    from crowdtui.host_relay import placed_on
    from crowdtui.runtime.engines import agents_served_on, record_engine, record_node, recorded_node

    cfg = workspace.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + "".join(f'\n[engines.{n}]\nurl = "unix:///x/{n}.sock"\n' for n in ("n1", "n2"))
                   + '\n[engines.sw]\nurl = "unix:///x/n1.sock"\nmode = "swarm"\n')
    ws = load_workspace(workspace.root)
    record_engine(ws, "a", "sw")
    assert recorded_node(ws, "a") is None and agents_served_on(ws, "sw") == []  # not seen yet: nobody
    record_node(ws, "a", "sw", "n2")
    record_engine(ws, "b", "n1")  # placed on the node engine itself
    trust = placed_on(ws)
    assert (trust("n2"), trust("n1"), trust("sw")) == ({"a"}, {"b"}, set())
    record_node(ws, "a", "sw", "n1")  # the task moved
    assert (trust("n2"), trust("n1")) == (set(), {"a", "b"})
    record_engine(ws, "a", "n2")  # placed elsewhere: the node record goes
    assert recorded_node(ws, "a") is None and trust("n1") == {"b"} and trust("n2") == {"a"}
    record_engine(ws, "c", "sw")
    record_node(ws, "c", "sw", "n2")
    record_engine(ws, "c", "local")  # back home: the node record goes with the placement record
    (ws.crowd_dir / "run" / "node" / "d").write_text("n1 n2")  # forged: names no swarm
    assert trust("n2") == {"a"}


def test_secrets_and_allowlist_stay_refused_on_a_swarm_even_with_a_relay(workspace, docker_client):
    """A Swarm's node relays carry only the hub door: secrets and ``network: allowlist`` are refused
    before anything is made, with the reason, whether or not a host wired the relays."""
    from crowdtui.roster import AgentDef
    from crowdtui.runtime.containers import ContainerFailed, Runtime
    from crowdtui.runtime.relay_container import RelayHookup

    cfg = workspace.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + '\n[engines.sw]\nurl = "unix:///x/n1.sock"\nmode = "swarm"\n')
    ws = load_workspace(workspace.root)
    runtime = Runtime(ws, docker_client)
    try:
        for door in (None, RelayHookup("10.0.0.1:7443", lambda engine: None)):
            runtime.door = door
            if door is not None:
                door.secrets = lambda *a: None  # as the host wires it
            files = runtime.files("sw")
            for extra, refused in (({"secrets": ("API_KEY",)}, "secrets"),
                                   ({"network": "allowlist", "egress": ("example.org:443",)}, "network: allowlist")):
                agent = AgentDef(name="sw1", file=ws.agents_dir / "sw1" / "AGENT.md", rel_path="sw1", tier=0,
                                 parent=None, children=(), description="", engine="sw", **extra)
                with pytest.raises(ContainerFailed, match=rf"on swarm engine sw it cannot have {refused} "
                                                          r"\(the relays of a swarm's nodes carry only"):
                    files.check(agent)
            files.check(AgentDef(name="sw2", file=ws.agents_dir / "sw2" / "AGENT.md", rel_path="sw2", tier=0,
                                 parent=None, children=(), description="", engine="sw"))
    finally:
        runtime.close()
