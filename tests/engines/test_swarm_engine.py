"""A two-node Swarm (mode = "swarm"): an agent runs as a one-replica service, the console's
session pool attaches to it through its node's engine, and after that node leaves the swarm
the agent runs on the other node (found there, attached there)."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.runtime.containers import Runtime
from crowdtui.workspace import load_workspace
from tests.waiting import wait_for

from .conftest import drive_terminal, write_agent
from .engine_harness import start_swarm

pytestmark = pytest.mark.docker


@pytest.fixture
def swarm(workspace, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    manager, worker = start_swarm()
    cfg = workspace.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + "\n" + manager.toml("n1") + "\n" + worker.toml("n2") + "\n"
                   + manager.toml("sw") + 'mode = "swarm"\n')
    yield load_workspace(workspace.root), manager, worker
    worker.teardown()
    manager.teardown()


async def test_an_agent_runs_as_a_service_and_moves_when_its_node_leaves(swarm, docker_client, agent_image):
    ws, manager, worker = swarm
    write_agent(ws, "swarmy", "engine: sw\ncommand: [sh]\nrestart: always\n", "Runs on a swarm.\n")
    mc = manager.local_client()
    me = mc.info()["Swarm"]["NodeID"]
    mc.nodes.get(me).update({"Availability": "pause", "Role": "manager"})  # the first task: the worker's
    runtime = Runtime(ws, docker_client)
    store = await ws.open_store()
    try:
        info = await lifecycle.start(runtime, store, load_roster(ws).get("swarmy"), actor="operator",
                                     register_first=True)
        assert info.state == "running" and info.engine == "sw"
        assert runtime._seen[info.container_id] == "n2"  # reached through the worker's engine
        assert {i.name: i.where() for i in await runtime.list()}["swarmy"] == "sw/n2"  # what ls shows
        await drive_terminal(runtime, docker_client, info, "sw", 24, 81, "Runs on a swarm.")
        # the worker leaves: the service's task moves to the manager's node
        mc.nodes.get(me).update({"Availability": "active", "Role": "manager"})
        wc = worker.local_client()
        await asyncio.to_thread(wc.swarm.leave, True)
        wc.close()

        async def moved():
            now = await runtime.info("swarmy")
            return now if now is not None and now.running and now.container_id != info.container_id else None

        now = await wait_for(moved, 120, "the service running on the other node")
        assert runtime._seen[now.container_id] == "n1"
        assert {i.name: i.where() for i in await runtime.list()}["swarmy"] == "sw/n1"
        await drive_terminal(runtime, docker_client, now, "moved", 25, 80, "Runs on a swarm.")
        assert (await lifecycle.stop(runtime, store, "swarmy", actor="operator", timeout=2)).state in ("stopped", "exited")
        assert await runtime.remove("swarmy") is True
        assert mc.services.list() == []
    finally:
        mc.close()
        await store.close()
        runtime.close()
