"""An engine stopped and started again: its agents show unreachable and come back (their
containers re-adopted: the same ones, still running), while an agent on the local engine is
never interrupted."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.state import start_following
from tests.waiting import wait_for

from .conftest import write_agent

pytestmark = pytest.mark.docker


async def test_an_engine_that_goes_away_and_returns(far_workspace, far_engine, docker_client, agent_image):
    ws = far_workspace
    write_agent(ws, "away", "engine: far\ncommand: [sleep, infinity]\n")
    write_agent(ws, "home", "command: [sleep, infinity]\n")
    roster = load_roster(ws)
    runtime = Runtime(ws, docker_client)
    store = await ws.open_store()
    stop_following = None
    try:
        away = await lifecycle.start(runtime, store, roster.get("away"), actor="operator", register_first=True)
        home = await lifecycle.start(runtime, store, roster.get("home"), actor="operator", register_first=True)
        assert (away.engine, home.engine) == ("far", "local")
        follower, stop_following = start_following(runtime, store)
        await asyncio.wait_for(follower.ready.wait(), 30)

        async def state(name):
            return (await store.get_agent(name)).state

        await asyncio.to_thread(far_engine.stop)
        await wait_for(lambda: _is(state("away"), "unreachable"), 60, "away unreachable")
        assert await state("home") == "running"
        ls = {i.name: i for i in await runtime.list()}
        assert "away" not in ls and runtime.unreachable == {"far"} and ls["home"].running

        await asyncio.to_thread(far_engine.start)
        await wait_for(lambda: _is(state("away"), "running"), 60, "away running again")
        again = await runtime.info("away")
        assert again.container_id == away.container_id and again.engine == "far"  # re-adopted
        async def engine_events():  # engine.reachable comes right after the states are reconciled
            return [e.kind for e in await store.events_after(0, limit=1000) if e.subject == "far"]

        events = await wait_for(lambda: _has(engine_events(), "engine.reachable"), 30, "engine.reachable")
        assert events.index("engine.unreachable") < events.index("engine.reachable")
        # the local agent: the same container, never restarted
        now = await runtime.info("home")
        assert (now.container_id, now.started_at, now.state) == (home.container_id, home.started_at, "running")
    finally:
        if stop_following is not None:
            await stop_following()
        await store.close()
        runtime.close()


async def _is(value, wanted):
    return (await value) == wanted


async def _has(values, wanted):
    got = await values
    return got if wanted in got else None
