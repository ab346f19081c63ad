"""Issue 19's first acceptance: one hub drives agents on three engines — the local one, one over
tcp+TLS and one over ssh — with attach, exec and logs on each; the three exchange messages and work
on one document through the hub.

Real parts: the host assembly (``crowdtui.host.Host``, as ``crowdtui serve`` and the console run
it), two extra dockerd each in its own network namespace (``engine_harness.NetEngine``: the TLS one
reached over tcp, the other over ssh through a real sshd, host key checked against known_hosts),
the relay container the runtime starts on each remote engine, and crowd-mcp-bridge inside each
agent container. The two engines reach the host at different addresses (each at the host's end
of its own veth pair), so the hub's relay door listens on 0.0.0.0 and each engine's relay is given
its own ``[engines.NAME] relay_address``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from crowdtui.hub.tools import CONFLICT
from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.logs import read_logs
from crowdtui.workspace import load_workspace
from tests.relay.conftest import bridge_session
from tests.waiting import wait_for

from .conftest import drive_terminal, write_agent
from .engine_harness import start_engine
from .test_cross_engine import _call, _free_port

pytestmark = pytest.mark.docker

#: agent -> (engine, terminal tag, persona)
CREW = {"near": ("local", "nr", "You are near."),
        "far1": ("far", "tl", "You are far away, over TLS."),
        "sshy": ("viassh", "sh", "You are reached by ssh.")}


@pytest.fixture(scope="module")
def ssh_engine(tmp_path_factory):
    """A second extra engine (its own namespace and veth pair: index 1, the TLS one is index 0)
    with sshd beside it; ``(engine, ssh URL, the client's home with its key and known_hosts)``."""
    engine = start_engine(1)
    try:
        home = tmp_path_factory.mktemp("sshhome3")
        yield engine, engine.start_sshd(home), home
    finally:
        engine.teardown()


def _data(answer: dict) -> dict:
    assert "error" not in answer, answer
    result = answer["result"]
    assert not result.get("isError"), result
    return result.get("structuredContent") or json.loads(result["content"][0]["text"])


async def _session(container, *calls: dict) -> dict[int, dict]:
    """One crowd-mcp-bridge session inside the agent's container; the answers by id."""
    answers = await asyncio.to_thread(bridge_session, container, *calls)
    return {a.get("id"): a for a in answers}


def _preload(engine, docker_client, image: str) -> None:
    """The agent image onto the engine over its own socket (the copy over the network is
    test_tls_engine.py's; through paramiko it is slow)."""
    from crowdtui.runtime.engines import copy_image

    remote = engine.local_client()
    try:
        copy_image(docker_client, remote, image)
    finally:
        remote.close()


async def test_one_hub_drives_agents_on_three_engines(far_workspace, far_engine, ssh_engine, docker_client,
                                                      agent_image, monkeypatch):
    ssh, ssh_url, home = ssh_engine
    monkeypatch.setenv("HOME", str(home))  # paramiko reads ~/.ssh (key, known_hosts)
    remotes = {"far": far_engine, "viassh": ssh}
    port = _free_port("0.0.0.0")
    reach = {name: f"{engine.host_ip}:{port}" for name, engine in remotes.items()}
    assert len(set(reach.values())) == 2  # two engines, two addresses: one hub address cannot serve both
    await asyncio.gather(*(asyncio.to_thread(_preload, e, docker_client, agent_image) for e in remotes.values()))

    ws = far_workspace
    cfg = ws.root / "crowd.toml"
    # the test engines run without iptables (no NAT from their bridges): each relay joins its
    # engine's host network and reaches the hub at the host's end of that engine's veth pair
    text = cfg.read_text().rstrip("\n") + f'\nrelay_network = "host"\nrelay_address = "{reach["far"]}"\n'
    assert text.count("[engines.") == 1 and text.count("\n[hub]\n") == 1
    text += (f'\n[engines.viassh]\nurl = "{ssh_url}"\nrelay_network = "host"\n'
             f'relay_address = "{reach["viassh"]}"\n')
    cfg.write_text(text.replace("\n[hub]\n", f'\n[hub]\nrelay_host = "0.0.0.0"\nrelay_port = {port}\n'))
    for name, (engine, _, persona) in CREW.items():
        write_agent(ws, name, ("" if engine == "local" else f"engine: {engine}\n") + "command: [sh]\n",
                    persona + "\n")
    ws = load_workspace(ws.root)
    roster = load_roster(ws)
    runtime, host = await start_host(ws, docker_client, port)
    try:
        hub = host.hub
        assert {e: runtime.door.address_for(e) for e in remotes} == reach
        infos = {}
        for name in CREW:
            infos[name] = await lifecycle.start(runtime, host.store, roster.get(name), actor="operator")
        assert {n: i.engine for n, i in infos.items()} == {n: c[0] for n, c in CREW.items()}

        # each remote engine runs its own relay, given its own address of the hub, and links
        relays_run(ws, remotes, reach)
        await wait_for(lambda: set(remotes) <= set(hub.relay.links), 60, "both relays linked to the hub")
        await wait_for(lambda: set(CREW) <= set(hub.doors), 30, "the three doors open")
        assert {e: await hub.relay.placed(e) for e in remotes} == {"far": {"far1"}, "viassh": {"sshy"}}

        # attach (type, resize), exec and logs on each engine
        for name, (_, tag, persona) in CREW.items():
            await drive_terminal(runtime, docker_client, infos[name], tag, 28, 100, persona)
            assert any(f"{tag}-42" in line.text for line in await read_logs(runtime, [name])), name

        c = {name: await runtime.container(name) for name in CREW}
        # messages around the three engines: near -> far1 -> sshy -> near
        a = await _session(c["near"], _call(2, "send_message", to="far1", body="near to far1"))
        _data(a[2])
        a = await _session(c["far1"], _call(2, "get_messages", unread_only=False),
                           _call(3, "send_message", to="sshy", body="far1 to sshy"))
        assert [(m["sender"], m["body"]) for m in _data(a[2])["messages"]] == [("near", "near to far1")]
        _data(a[3])
        a = await _session(c["sshy"], _call(2, "get_messages", unread_only=False),
                           _call(3, "send_message", to="near", body="sshy to near"))
        assert [(m["sender"], m["body"]) for m in _data(a[2])["messages"]] == [("far1", "far1 to sshy")]
        _data(a[3])
        a = await _session(c["near"], _call(2, "get_messages", unread_only=False))
        assert [(m["sender"], m["body"]) for m in _data(a[2])["messages"]] == [("sshy", "sshy to near")]

        # one document: near creates it, far1 checks it out, sshy is refused while far1 holds it,
        # far1 checks in a new version, sshy reads it and may now check it out
        a = await _session(c["near"], _call(2, "create_document", doc_type="SOP", title="Crew plan",
                                            content="v1 by near"))
        doc = _data(a[2])
        assert (doc["author"], doc["version"]) == ("near", 1)
        a = await _session(c["far1"], _call(2, "checkout_document", doc_id=doc["id"]))
        assert _data(a[2])["holder"] == "far1"
        a = await _session(c["sshy"], _call(2, "checkout_document", doc_id=doc["id"]))
        assert a[2].get("error", {}).get("code") == CONFLICT and "far1" in a[2]["error"]["message"], a[2]
        a = await _session(c["far1"], _call(2, "checkin_document", doc_id=doc["id"], content="v2 by far1",
                                            note="from the TLS engine"))
        assert _data(a[2])["version"] == 2
        a = await _session(c["sshy"], _call(2, "read_document", doc_id=doc["id"]),
                           _call(3, "checkout_document", doc_id=doc["id"]),
                           _call(4, "cancel_checkout", doc_id=doc["id"]))
        read = _data(a[2])
        assert (read["version"], read["content"], read["holder"]) == (2, "v2 by far1", None)
        assert _data(a[3])["holder"] == "sshy" and _data(a[4])["cancelled"] is True
        stored = await host.store.get_document(doc["id"])
        assert (stored.version, stored.content, stored.holder) == (2, "v2 by far1", None)

        # every call came in through its own agent's door: the remote ones through their engine's relay
        await hub.audit.drain()
        calls = [e for e in await host.store.events_after(0, limit=10000, kinds=["hub.call"])
                 if e.actor in CREW]
        via = {}
        for e in calls:
            via.setdefault(e.actor, set()).add(e.detail.get("via"))
        assert via == {"near": {"socket"}, "far1": {"relay:far"}, "sshy": {"relay:viassh"}}
    finally:
        await wind_down(host, runtime, ws, remotes, CREW)


async def start_host(ws, docker_client, port: int):
    """The runtime and the started host (no dispatch), its relay door on 0.0.0.0:``port``."""
    from crowdtui.host import Host, HostOptions

    runtime = Runtime(ws, docker_client)
    host = Host(ws, options=HostOptions(dispatch=False), runtime=runtime)
    await host.start()
    assert host.hub.relay is not None and tuple(host.hub.relay.address) == ("0.0.0.0", port)
    return runtime, host


def relays_run(ws, remotes: dict, reach: dict) -> None:
    """Each engine of ``remotes`` (name -> ``NetEngine``) runs its relay, told to reach the hub at
    ``reach[name]``."""
    from crowdtui.runtime.relay_container import find_relay

    for engine_name, engine in remotes.items():
        remote = engine.local_client()
        try:
            relay = find_relay(remote, ws, engine_name)
            assert relay is not None and relay.status == "running"
            assert f"CROWD_RELAY_HUB={reach[engine_name]}" in relay.attrs["Config"]["Env"]
        finally:
            remote.close()


async def wind_down(host, runtime, ws, remotes: dict, agents) -> None:
    """After a test with relays on test engines (``remotes``: engine name -> ``NetEngine``): each
    relay's log printed, the host stopped, the agents removed (their containers or services and IPC
    volumes), the relays and their volumes removed, the runtime closed."""
    from crowdtui.runtime.relay_container import find_relay, stop_relay

    for engine_name, engine in remotes.items():
        remote = engine.local_client()
        try:
            relay = find_relay(remote, ws, engine_name)
            if relay is not None:
                print(f"relay log ({engine_name}):\n" + relay.logs(tail=40).decode(errors="replace"))
        finally:
            remote.close()
    await host.stop()
    for name in agents:
        try:
            await runtime.remove(name)  # the container, and on a remote engine its IPC volume
        except Exception as exc:
            print(f"removing {name}: {exc}")
    for engine_name, engine in remotes.items():  # the relays and their volumes
        remote = engine.local_client()
        try:
            await asyncio.to_thread(stop_relay, remote, ws, engine_name, remove_volume=True)
        finally:
            remote.close()
    runtime.close()
