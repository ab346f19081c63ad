"""Secrets and ``network: allowlist`` for agents on a remote (tcp+TLS) engine, through its relay.

Real parts: the host assembly (``crowdtui.host.Host``) with its hub and relay door on the host
side of the engine's veth pair, the runtime starting the agent on the far engine, the relay
container the runtime starts there, crowd-entry in the agent's container, the vault, the
hub's egress proxy and an HTTP server on the host's loopback. A relay written by hand
(tests/relay/test_relay_trust.py's), holding the far engine's real credential, says what a
hostile relay would.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.runtime.containers import Runtime
from crowdtui.workspace import load_workspace
from tests.egress.conftest import http_server  # noqa: F401 (the fixture: HTTP servers on the host's loopback)
from tests.waiting import wait_for

from .conftest import stop_host, write_agent

pytestmark = pytest.mark.docker

VALUE = "far-\u00e9-" + "5d1c7e0a9b" * 3  # recognisable, non-ASCII too


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _relay_toml(ws, far_engine) -> int:
    """The relay door on the host side of the far engine's veth (its relay on the engine's host
    network: the test engine has no NAT), as test_cross_engine.py sets it; returns the port."""
    cfg = ws.root / "crowd.toml"
    port = _free_port(far_engine.host_ip)
    text = cfg.read_text().rstrip("\n") + '\nrelay_network = "host"\n'
    assert text.count("\n[hub]\n") == 1
    cfg.write_text(text.replace("\n[hub]\n", f'\n[hub]\nrelay_host = "{far_engine.host_ip}"\nrelay_port = {port}\n'))
    return port


async def _host(ws, docker_client):
    from crowdtui.host import Host, HostOptions

    runtime = Runtime(ws, docker_client)
    host = Host(ws, options=HostOptions(dispatch=False), runtime=runtime)
    await host.start()
    return host, runtime


async def _exec(container, script: str) -> str:
    code, out = await asyncio.to_thread(container.exec_run, ["sh", "-c", script], user="1000:1000")
    return out.decode("utf-8", "replace")


async def test_a_far_agent_gets_its_secret_through_the_relay_and_nowhere_else(
        far_workspace, far_engine, docker_client, agent_image, monkeypatch):
    from crowdtui.secrets import Vault

    monkeypatch.setenv("CROWD_SECRET_KEY", "44" * 32)
    ws = far_workspace
    _relay_toml(ws, far_engine)
    write_agent(ws, "keeper", "engine: far\nsecrets: [MYSECRET]\n"
                "command: [sh, -c, 'echo \"$MYSECRET\" > /tmp/x; exec sleep 600']\n", "You keep a secret.\n")
    ws = load_workspace(ws.root)
    host, runtime = await _host(ws, docker_client)
    try:
        assert runtime.door is not None and runtime.door.secrets is not None
        await Vault.open(ws, host.store).set("MYSECRET", VALUE)
        info = await lifecycle.start(runtime, host.store, load_roster(ws).get("keeper"), actor="operator")
        assert info.engine == "far"
        container = await runtime.container("keeper")
        assert await wait_for(lambda: _exec(container, "cat /tmp/x 2>/dev/null"), 20, "the command's file") \
            == VALUE + "\n"
        # a fresh exec is not the agent's process: it has only the name
        assert VALUE not in await _exec(container, "env")
        # the one-shot socket is gone from the agent's /run/crowd once the relay was told
        await wait_for(lambda: _gone(container), 15, "secrets.sock removed from the agent's /run/crowd")

        # nowhere else in plain text: the far engine's container configuration, the events
        remote = far_engine.local_client()
        try:
            attrs = json.dumps(remote.api.inspect_container(info.container_id))
        finally:
            remote.close()
        assert VALUE not in attrs and "MYSECRET" in attrs  # the name only (CROWD_SECRETS)
        events = await host.store.events_after(0, limit=100000)
        assert VALUE not in json.dumps([(e.kind, e.subject, e.detail) for e in events])
        [taken] = [e for e in events if e.kind == "relay.secrets_taken"]
        assert taken.subject == "keeper" and taken.detail["engine"] == "far" and taken.detail["names"] == ["MYSECRET"]
        assert not host.hub.relay.secrets.wanted("keeper", "far")  # the offer (and its values) are gone
        for f in ws.crowd_dir.rglob("*"):
            if f.is_file():
                assert VALUE.encode() not in f.read_bytes(), f
    finally:
        await stop_host(host, runtime, far_engine, ws)


async def _gone(container) -> bool:
    return "gone" in await _exec(container, "test -e /run/crowd/secrets.sock && echo there || echo gone")


async def test_a_relay_takes_secrets_once_only_for_its_own_pending_agents(far_workspace, far_engine, docker_client,
                                                                          agent_image, tmp_path):
    """A hand-written relay with the far engine's real credential: it cannot take the secrets of an
    agent not placed on its engine, nor when none are pending, nor twice."""
    from crowdtui.hub import relay_wire as wire
    from crowdtui.hub.relay_credentials import engine_credential
    from crowdtui.runtime.engines import record_engine
    from tests.relay.test_relay_trust import HandRelay

    ws = far_workspace
    _relay_toml(ws, far_engine)
    write_agent(ws, "near", "command: [sh]\n", "You are near.\n")
    write_agent(ws, "far1", "engine: far\ncommand: [sh]\n", "You are far away.\n")
    ws = load_workspace(ws.root)
    host, runtime = await _host(ws, docker_client)
    hand = None
    try:
        record_engine(ws, "near", "local")
        record_engine(ws, "far1", "far")  # placed there (as the runtime records it before a start)
        relay = host.hub.relay
        payload = json.dumps({"MYSECRET": VALUE}).encode()
        near_offer = relay.offer_secrets("near", "far", payload, ("MYSECRET",))  # an offer naming far, yet
        hand = await HandRelay.connect(relay.address, engine_credential(ws, "far", issue=True), tmp_path / "hand")
        await hand.send(wire.control(wire.HELLO, engine="far", version=1))
        await hand.expect(wire.WELCOME)
        _, _, served = await hand.expect(wire.SERVE)
        assert "near" not in json.loads(served)["agents"]  # near is not placed on far: not served

        async def refused(sid: int, agent: str) -> str:
            await hand.send(wire.control(wire.OPEN, sid, agent=agent, door="secrets"))
            while True:
                kind, got, body = await hand.expect(wire.REFUSED)
                if got == sid:
                    return json.loads(body)["reason"]

        # not placed on its engine (whatever offer exists): refused, nothing sent
        assert "not placed on engine" in await refused(1, "near")
        assert not near_offer.wait(0)
        near_offer.withdraw()
        # placed there, but nothing pending
        assert "no secrets hand-off is pending" in await refused(3, "far1")

        # pending: SERVE names the secrets door; the one stream gets the values, then CLOSE
        offer = relay.offer_secrets("far1", "far", payload, ("MYSECRET",))
        while True:
            _, _, served = await hand.expect(wire.SERVE)
            if "secrets" in json.loads(served)["agents"].get("far1", []):
                break
        await hand.send(wire.control(wire.OPEN, 5, agent="far1", door="secrets"))
        got = b""
        while True:
            frame = await hand.next()
            assert frame is not None, "the hub closed the link"
            kind, sid, body = frame
            if sid == 5 and kind == wire.DATA:
                got += body
            elif sid == 5 and kind == wire.CLOSE:
                break
            else:
                assert kind in (wire.SERVE, wire.CREDIT, wire.PONG), frame
        assert json.loads(got) == {"MYSECRET": VALUE}
        assert await asyncio.to_thread(offer.wait, 10) and offer.error is None
        # a second take of the same offer: refused
        assert "already taken" in await refused(7, "far1")
        offer.withdraw()
        assert "no secrets hand-off is pending" in await refused(9, "far1")
        await wait_for(lambda: "far1" not in (relay.links["far"].served or {}), 10,
                       "the relay told to drop far1's secrets socket")

        async def reasons():
            found = {(e.subject, e.detail.get("reason"))
                     for e in await host.store.events_after(0, limit=10000, kinds=["relay.refused"])}
            wanted = {("near", "not_on_engine"), ("far1", "no_handoff"), ("far1", "taken")}
            return found if wanted <= found else None

        await wait_for(reasons, 10, "the refusals recorded")
        events = await host.store.events_after(0, limit=100000)
        assert VALUE not in json.dumps([(e.kind, e.subject, e.detail) for e in events])
    finally:
        if hand is not None:
            hand.close()
        await stop_host(host, runtime, far_engine, ws)


async def test_a_far_allowlisted_agent_reaches_only_its_list_through_the_hosts_proxy(
        far_workspace, far_engine, docker_client, agent_image, http_server):
    from tests.egress.test_containers import FETCH, run_py

    ok_port, other_port = http_server("allowed"), http_server("other")
    ws = far_workspace
    _relay_toml(ws, far_engine)
    write_agent(ws, "fetcher", f"engine: far\nnetwork: allowlist\negress: [\"127.0.0.1:{ok_port}\"]\n"
                "command: [sleep, '600']\n", "You fetch.\n")
    ws = load_workspace(ws.root)
    host, runtime = await _host(ws, docker_client)
    try:
        info = await lifecycle.start(runtime, host.store, load_roster(ws).get("fetcher"), actor="operator")
        assert info.engine == "far"
        remote = far_engine.local_client()
        try:
            attrs = remote.api.inspect_container(info.container_id)
        finally:
            remote.close()
        assert attrs["HostConfig"]["NetworkMode"] == "none"
        container = await runtime.container("fetcher")
        # the container's own loopback is exempt (NO_PROXY); the host's server is reached through the proxy
        through = {"NO_PROXY": "localhost", "no_proxy": "localhost"}
        got = await run_py(container, FETCH, f"http://127.0.0.1:{ok_port}/hi", environment=through)
        assert got == {"status": 200, "body": f"hello from allowed /hi host=127.0.0.1:{ok_port}"}
        denied = await run_py(container, FETCH, f"http://127.0.0.1:{other_port}/", environment=through)
        assert denied["status"] == 403 and "is not allowed for agent fetcher" in denied["body"]
        denied_host = await run_py(container, FETCH, f"http://not-listed.test:{ok_port}/", environment=through)
        assert denied_host["status"] == 403
        decisions = [(e.kind, e.detail["host"], e.detail["port"], e.detail.get("via"))
                     for e in await host.store.events_after(0, limit=100000)
                     if e.kind in ("egress.allowed", "egress.denied")]
        assert decisions == [("egress.allowed", "127.0.0.1", ok_port, "relay:far"),
                             ("egress.denied", "127.0.0.1", other_port, "relay:far"),
                             ("egress.denied", "not-listed.test", ok_port, "relay:far")]
    finally:
        await stop_host(host, runtime, far_engine, ws)


async def test_without_a_relay_secrets_and_allowlist_are_refused_with_the_reason(far_workspace, far_engine,
                                                                                docker_client, agent_image):
    """A start made without a host (no relay wired): refused before
    anything is made on the engine, saying why and what to do."""
    from crowdtui.runtime import labels
    from crowdtui.runtime.containers import ContainerFailed

    ws = far_workspace
    write_agent(ws, "hush", "engine: far\ncommand: [sh]\nsecrets: [API_KEY]\n")
    write_agent(ws, "netty", "engine: far\ncommand: [sh]\nnetwork: allowlist\negress: ['example.org:443']\n")
    roster = load_roster(ws)
    runtime = Runtime(ws, docker_client)
    try:
        assert runtime.door is None
        with pytest.raises(ContainerFailed, match=r"cannot have secrets without the engine's relay.*"
                                                  r"start the agent from the console.*engine: local"):
            await runtime.start(roster.get("hush"), secrets={"API_KEY": VALUE})
        with pytest.raises(ContainerFailed, match=r"cannot have network: allowlist without the engine's relay"):
            await runtime.start(roster.get("netty"))
    finally:
        runtime.close()
    remote = far_engine.local_client()
    try:
        assert not remote.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={ws.id}"})
    finally:
        remote.close()
