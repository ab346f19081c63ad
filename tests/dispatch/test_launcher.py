"""Launch policies on the real Docker engine: on_task starts a stopped agent once; per_message
gives each routed message a fresh container whose home persists."""

from __future__ import annotations

import pytest

from crowdtui.dispatch.launcher import Launcher
from crowdtui.roster import load_roster
from serve_helpers import write_agent

from tests.waiting import wait_for

pytestmark = pytest.mark.docker

RUN = "command: [bash, -c, 'echo run >> $HOME/runs.txt; exec sleep 300']\n"


async def test_per_message_fresh_container_same_home_and_on_task_starts_once(workspace, store, agent_image):
    from crowdtui.roster import sync_roster
    from crowdtui.runtime.containers import Runtime

    write_agent(workspace, "fresh", front=RUN + "launch: per_message\n")
    write_agent(workspace, "steady", front=RUN + "launch: on_task\n")
    write_agent(workspace, "idle", front=RUN + "launch: manual\n")
    await sync_roster(store, load_roster(workspace))
    runtime = Runtime(workspace)
    lines: list[str] = []
    launcher = Launcher(workspace, store, runtime, log=lines.append)
    try:
        runs = workspace.home_dir("fresh") / "runs.txt"
        await launcher.delivered("fresh")
        first = (await runtime.info("fresh")).id
        await wait_for(lambda: _lines(runs, 1), timeout=60, what="the first container to write its home")
        await launcher.delivered("fresh")
        second = (await runtime.info("fresh")).id
        assert second != first
        await wait_for(lambda: _lines(runs, 2), timeout=60, what="the second container to write the same home")

        await launcher.delivered("steady")
        steady = (await runtime.info("steady")).id
        await store.set_agent_state("steady", "running", actor="runtime")  # what the state follower records
        await launcher.delivered("steady")
        assert (await runtime.info("steady")).id == steady  # already running: left alone

        await launcher.delivered("idle")
        assert await runtime.info("idle") is None  # manual: the operator decides
    finally:
        runtime.close()


async def _lines(path, n: int) -> bool:
    return path.exists() and len(path.read_text().splitlines()) >= n
