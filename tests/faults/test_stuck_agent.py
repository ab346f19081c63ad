"""A stuck agent is detected and shown as stuck: a container frozen with `docker pause`, and
an agent program stopped with SIGSTOP while it has unread work (it cannot read its inbox).
Each becomes an ``agent.stuck`` event with the reason and the registry detail the console
shows ("stuck"); moving again is ``agent.unstuck``. The messages waiting meanwhile are all
answered once it moves: nothing acknowledged is lost. Real engine, hub door and agent.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from crowdtui.hub.hub import Hub
from crowdtui.hub.launch_policy import runtime_paused, runtime_probe
from crowdtui.hub.supervisor import Supervisor
from crowdtui.roster import load_roster, sync_roster
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.state import StateFollower
from crowdtui.tui.crew import merge_rows
from qms import Store

from tests.waiting import wait_for as until

pytestmark = pytest.mark.docker


@pytest.mark.timeout(150)
async def test_a_paused_container_and_a_stopped_program_with_unread_work_are_shown_as_stuck(workspace, agent_image):
    for name, command in (("frozen", "[sleep, infinity]"), ("echo", "[crowd-agent, --role, echo, --poll, '0.3']")):
        (workspace.agents_dir / name).mkdir(parents=True)
        (workspace.agents_dir / name / "AGENT.md").write_text(f"---\nname: {name}\ncommand: {command}\n---\nx\n")
    store = await Store.open(workspace.db_path)
    roster = load_roster(workspace)
    await sync_roster(store, roster)
    runtime = Runtime(workspace)
    follower = StateFollower(runtime, store)
    halt = asyncio.Event()
    following = asyncio.create_task(follower.run(halt))
    await follower.ready.wait()
    hub = Hub(workspace, store)
    await hub.start()
    sup = Supervisor(store, hub.directory, probe=runtime_probe(runtime), paused=runtime_paused(runtime), stuck_after=3.0, stuck_every=0.3)
    supervising = asyncio.create_task(sup.run())
    try:
        for name in ("frozen", "echo"):
            await hub.open_door(name)
            await runtime.start(roster.agents[name])
        await until(lambda: _states(store, running=("frozen", "echo")), what="both running")
        hello = await store.send_message("operator", "echo", "hello")
        await until(lambda: _answered(store, ["hello"]), what="echo answers")

        (await runtime.container("frozen")).pause()
        [e] = await until(lambda: store.events_after(0, kinds=["agent.stuck"], subject="frozen"), 15, "frozen stuck")
        assert e.detail["reason"] == "container paused"
        rows = {r.name: r for r in merge_rows(await store.list_agents())}
        assert (rows["frozen"].state, rows["frozen"].note) == ("stuck", "stuck: container paused")
        (await runtime.container("frozen")).unpause()
        await until(lambda: store.events_after(0, kinds=["agent.unstuck"], subject="frozen"), 15, "frozen moves")

        pids = [int(p[1]) for p in (await runtime.container("echo")).top()["Processes"] if "crowd-agent" in " ".join(p)]
        assert pids, "the agent program was not found in its container"
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        sent = [f"while stopped {i}" for i in range(3)]
        for body in sent:
            await store.send_message("operator", "echo", body)
        [e] = await until(lambda: store.events_after(0, kinds=["agent.stuck"], subject="echo"), 20, "echo stuck")
        assert e.detail["reason"].startswith("unread work for ")
        agent = await store.get_agent("echo")
        assert agent.state == "running" and '"stuck": "unread work for' in agent.state_detail
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        await until(lambda: store.events_after(0, kinds=["agent.unstuck"], subject="echo"), 20, "echo moves")
        await until(lambda: _answered(store, ["hello", *sent]), what="every waiting message answered")
        assert '"stuck"' not in (await store.get_agent("echo")).state_detail
        assert hello
    finally:
        supervising.cancel()
        await asyncio.gather(supervising, return_exceptions=True)
        await hub.stop()
        halt.set()
        follower.close()
        await asyncio.gather(following, return_exceptions=True)
        for name in ("frozen", "echo"):
            c = await runtime.container(name)
            if c is not None and c.status == "paused":
                c.unpause()
            await runtime.remove(name)
        runtime.close()
        await store.close()


async def _states(store, running):
    return all([(await store.get_agent(n)).state == "running" for n in running])


async def _answered(store, bodies):
    got = {m.body for m in await store.inbox("operator")}
    return all(f"echo: {b}" in got for b in bodies)
