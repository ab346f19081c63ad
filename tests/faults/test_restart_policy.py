"""Restart policies: a crashing agent is restarted with exponential backoff until the
crash-loop limit, then shown as crash-looping with one event and a notice in the operator's
inbox; every restart is an event with the reason. ``restart: no`` and on-failure of a clean
exit start nothing. The hub's own supervisor (``Hub.run_policies``) against the real engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crowdtui.hub.hub import Hub
from crowdtui.hub.supervisor import CRASH_LOOP_FAILURES, RESTART_FIRST_DELAY
from crowdtui.roster import AgentDef, load_roster, restart_policy
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.state import StateFollower
from qms import Store

from tests.waiting import wait_for as until

pytestmark = pytest.mark.docker


def agent(ws, name, script, **fields) -> AgentDef:
    return AgentDef(name=name, file=Path(ws.agents_dir) / name / "AGENT.md", rel_path=name, tier=0,
                    command=("sh", "-c", script), **fields)


def test_restart_key_parses_and_defaults_by_launch_policy(workspace):
    files = {"a": "restart: no\nlaunch: always\n", "b": "restart: on-failure\n", "c": "launch: always\n",
             "d": "launch: on_task\n", "e": "", "f": "restart: sometimes\n"}
    for name, front in files.items():
        (workspace.agents_dir / name).mkdir(parents=True)
        (workspace.agents_dir / name / "AGENT.md").write_text(f"---\nname: {name}\n{front}---\nx\n")
    roster = load_roster(workspace)
    got = {n: restart_policy(d) for n, d in roster.agents.items()}
    assert got == {"a": "no", "b": "on-failure", "c": "always", "d": "on-failure", "e": "no"}  # f: not loaded
    [problem] = [str(p) for p in roster.problems if "restart" in str(p)]
    assert "'sometimes' is not one of no, on-failure, always" in problem


async def test_a_crashing_agent_is_restarted_with_backoff_until_the_crash_loop_limit(workspace, agent_image):
    defs = {
        "flaky": agent(workspace, "flaky", "sleep 0.2; exit 3", launch="on_task"),  # on-failure by default
        "steady": agent(workspace, "steady", "sleep 0.2; exit 4"),  # manual: restart no
        "clean": agent(workspace, "clean", "sleep 0.2; exit 0", restart="on-failure"),
        "again": agent(workspace, "again", "sleep 0.5; exit 0", restart="always"),
    }
    store = await Store.open(workspace.db_path)
    for d in defs.values():
        await store.upsert_agent(d.name, path=d.rel_path, tier=0)
    runtime = Runtime(workspace)
    follower = StateFollower(runtime, store)
    halt = asyncio.Event()
    following = asyncio.create_task(follower.run(halt))
    await follower.ready.wait()
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    try:
        hub.run_policies(runtime, announce=False, launch=False)
        await store.send_message("operator", "flaky", "work that waits through the crashes")  # acknowledged
        for d in defs.values():
            await runtime.start(d)
        await until(lambda: store.events_after(0, kinds=["agent.crash_loop"], subject="flaky"),
                    timeout=90, what="flaky's crash loop")
        await until(lambda: store.events_after(0, kinds=["agent.restarted"], subject="again"),
                    timeout=90, what="again restarted")
        await asyncio.sleep(2 * RESTART_FIRST_DELAY + 1)  # time for any wrong restart to show

        restarted = await store.events_after(0, kinds=["agent.restarted"], subject="flaky")
        assert [(e.detail["attempt"], e.detail["reason"]) for e in restarted] == [
            (n, "exit 3") for n in range(1, CRASH_LOOP_FAILURES)]
        waits = [e.detail["detail"] for e in await store.events_after(0, kinds=["agent.state"], subject="flaky")
                 if e.detail["state"] == "restarting"]
        assert [(w["attempt"], w["limit"], w["delay"], w["last_exit"]) for w in waits] == [
            (n, CRASH_LOOP_FAILURES, RESTART_FIRST_DELAY * 2 ** (n - 1), "exit 3")
            for n in range(1, CRASH_LOOP_FAILURES)]
        [loop] = await store.events_after(0, kinds=["agent.crash_loop"], subject="flaky")
        assert (loop.detail["failures"], loop.detail["last_exit"]) == (CRASH_LOOP_FAILURES, "exit 3")
        flaky = await store.get_agent("flaky")
        assert flaky.state == "crash-looping"
        notices = [m.body for m in await store.inbox("operator") if "flaky" in m.body]
        assert len(notices) == 1 and "flaky is crash-looping: 5 failures in 10 minutes (last: exit 3)" in notices[0]
        assert "crowdtui logs flaky" in notices[0]

        assert not await store.events_after(0, kinds=["agent.restarted"], subject="steady")
        assert (await store.get_agent("steady")).state == "crashed"
        assert not await store.events_after(0, kinds=["agent.restarted"], subject="clean")
        assert (await store.get_agent("clean")).state == "exited"
        assert [m.body for m in await store.inbox("flaky")] == ["work that waits through the crashes"]  # not lost
        again = await store.events_after(0, kinds=["agent.restarted"], subject="again")
        assert again[0].detail["reason"] == "exit 0"
    finally:
        await hub.stop()
        halt.set()
        follower.close()
        await asyncio.gather(following, return_exceptions=True)
        for name in defs:
            await runtime.remove(name)
        runtime.close()
        await store.close()


def test_the_console_row_says_restarting_with_the_count_and_the_last_exit():
    from crowdtui.tui.crew import merge_rows

    class A:
        def __init__(self, name, state, detail):
            self.name, self.path, self.tier, self.parent = name, name, 0, None
            self.state, self.state_detail, self.status, self.status_note = state, detail, None, ""

    rows = {r.name: r for r in merge_rows([
        A("a", "restarting", '{"attempt": 2, "limit": 5, "last_exit": "exit 3", "delay": 2}'),
        A("b", "crash-looping", '{"failures": 5, "last_exit": "out of memory"}'),
        A("c", "running", '{"container": "abc", "stuck": "container paused"}'),
        A("d", "running", '{"container": "abd"}'),
    ], containers={"a": {"state": "crashed"}, "c": {"state": "running"}})}
    assert (rows["a"].state, rows["a"].note) == ("restarting (2/5)", "last exit: exit 3")
    assert (rows["b"].state, rows["b"].note, rows["b"].needs_operator) == (
        "crash-looping", "last exit: out of memory", True)
    assert (rows["c"].state, rows["c"].note, rows["c"].needs_operator) == ("stuck", "stuck: container paused", True)
    assert rows["d"].state == "running"
