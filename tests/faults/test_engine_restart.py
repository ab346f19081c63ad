"""The engine goes away and comes back. A separate dockerd of the test's own (its own network
namespace; the machine's main engine is never touched) runs 10 agents; it is stopped as
`systemctl restart docker` would (its containers die with it) and started again.

The state follower says so at once (``engine.unreachable``, within the issue's 2 s), the
store keeps working meanwhile (messages sent then are kept), and once dockerd answers every
agent that was running runs again (one ``agent.restarted``, reason "engine gone", one
running container each: nothing started twice) and its door answers again.
"""

from __future__ import annotations

import asyncio
import time

import docker
import pytest
from mcp import Client

from crowdtui.hub.hub import Hub
from crowdtui.hub.unix_transport import unix_client
from crowdtui.roster import load_roster, sync_roster
from crowdtui.runtime import labels
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.image import image_tag
from crowdtui.runtime.state import StateFollower
from qms import Store

from tests.waiting import wait_for as until

from .testengine import TestEngine

pytestmark = pytest.mark.docker
N = 10
NAMES = [f"e{i:02d}" for i in range(N)]


@pytest.fixture
def engine(agent_image):
    import tempfile

    e = TestEngine(tempfile.mkdtemp(prefix="cf", dir="/tmp"))  # short: a unix socket path is at most 107 bytes
    try:
        e.start()
        main = docker.from_env()
        try:
            e.load_image(main, image_tag())
        finally:
            main.close()
        yield e
    finally:
        e.destroy()


async def all_running(store) -> bool:
    return all(a.state == "running" for a in await store.list_agents() if a.name in NAMES)


async def doors_answer(hub, store, tag: str) -> bool:
    for name in NAMES:
        if name not in hub.doors:
            return False
    for name in NAMES:
        async with Client(unix_client(hub.doors[name].path)) as c:
            r = await c.call_tool("send_message", {"to": "operator", "body": f"{name} {tag}"})
            assert not r.is_error
    return True


@pytest.mark.timeout(120)
async def test_engine_restart_brings_every_running_agent_back_once(workspace, engine):
    for name in NAMES:
        (workspace.agents_dir / name).mkdir(parents=True)
        (workspace.agents_dir / name / "AGENT.md").write_text(
            f"---\nname: {name}\ncommand: [sleep, infinity]\n---\nx\n")  # launch manual: restart no
    store = await Store.open(workspace.db_path)
    await sync_roster(store, load_roster(workspace))
    runtime = Runtime(workspace, client=engine.client())
    follower = StateFollower(runtime, store)
    halt = asyncio.Event()
    following = asyncio.create_task(follower.run(halt))
    await follower.ready.wait()
    hub = Hub(workspace, store)
    await hub.start()
    try:
        hub.follow_registry(0.1)
        hub.run_policies(runtime, announce=False, launch=False)
        roster = load_roster(workspace)
        for name in NAMES:
            await runtime.start(roster.agents[name])
        await until(lambda: all_running(store), 60, "all running")
        await until(lambda: doors_answer(hub, store, "before"), 30, "doors open")
        mark = await store.last_event_id()

        await asyncio.to_thread(engine.stop)  # returns once dockerd has exited
        gone = time.monotonic()
        [lost] = await until(lambda: store.events_after(mark, kinds=["engine.unreachable"]), 10, "unreachable")
        detected = time.monotonic() - gone
        assert detected <= 2.0, f"the outage was recorded {detected:.1f} s after dockerd exited"
        during = await store.send_message("operator", NAMES[0], "sent while the engine is away")  # store works
        assert during

        await asyncio.to_thread(engine.start)
        back = time.monotonic()
        await until(lambda: store.events_after(mark, kinds=["engine.reachable"]), 10, "reachable")
        await until(lambda: all_running(store), 30, "all running again")
        await until(lambda: doors_answer(hub, store, "after"), 30, "doors open again")
        recovered = time.monotonic() - back
        assert recovered <= 30.0
        await asyncio.sleep(2)  # time for any second start to show

        restarted = await store.events_after(mark, kinds=["agent.restarted"])
        assert sorted(e.subject for e in restarted) == NAMES  # one each
        assert {e.detail["reason"] for e in restarted} == {"engine gone"}
        running = runtime.client.containers.list(filters={"label": f"{labels.WORKSPACE}={workspace.id}",
                                                         "status": "running"})
        per_agent = sorted(c.labels[labels.AGENT] for c in running)
        assert per_agent == NAMES  # one running container each: nothing started twice
        bodies = {m.body for m in await store.inbox("operator")}
        assert {f"{n} before" for n in NAMES} | {f"{n} after" for n in NAMES} <= bodies  # nothing lost
        assert "sent while the engine is away" in {m.body for m in await store.inbox(NAMES[0])}
        print(f"\nengine restart: detected in {detected:.2f} s, {N} agents back in {recovered:.1f} s")
    finally:
        await hub.stop()
        halt.set()
        follower.close()
        await asyncio.gather(following, return_exceptions=True)
        runtime.close()
        await store.close()
