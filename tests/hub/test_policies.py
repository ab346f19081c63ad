"""Announcements typed into a real agent terminal; launch on_task and shutdown inbox_empty with real containers."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from crowdtui.hub.announce import Announcer, notice_text, pty_typist
from crowdtui.hub.directory import Directory
from crowdtui.hub.hub import Hub
from crowdtui.hub.launch_policy import LaunchPolicy, runtime_actions

from tests.waiting import wait_for

from .conftest import agent_def

pytestmark = pytest.mark.docker


@pytest.fixture
async def setup(workspace, agent_image):
    from qms import Store

    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.pty import SessionPool

    store = await Store.open(workspace.db_path)
    runtime = Runtime(workspace)
    pool = SessionPool(runtime.client)
    defs = {}
    yield store, runtime, pool, defs
    await pool.close()
    for name in defs:
        try:
            await runtime.remove(name)
        except Exception:
            pass
    await store.close()


def test_notice_is_one_marked_line_that_says_what_to_do():
    line = notice_text(3, ["lead", "qa", "lead", "x\x1b[2Jy"], high=True)
    assert line.startswith("[crowd] 3 new messages (high priority) from ")
    assert line.endswith("call get_messages")
    assert "\x1b" not in line and "\n" not in line


async def test_new_messages_are_announced_in_the_agents_terminal(setup, workspace):
    store, runtime, pool, defs = setup
    defs["lead"] = agent_def(workspace, "lead", "lead", 0, command=["crowd-agent", "--role", "interactive"])
    defs["quiet"] = dataclasses.replace(
        agent_def(workspace, "quiet", "quiet", 0, command=["crowd-agent", "--role", "interactive"]), announce=False)
    for d in defs.values():
        await store.upsert_agent(d.name, path=d.rel_path, tier=d.tier)
    async with Hub(workspace, store, definitions=defs.get) as hub:
        for d in defs.values():
            await hub.open_door(d.name)
            await runtime.start(d)
        sessions = {n: await pool.get((await runtime.info(n)).container_id) for n in defs}
        sessions["lead"].write(b"\r")  # an empty line: the prompt shows again once crowd-agent is up
        await wait_for(lambda: _contains(sessions["lead"], b"crowd>"), 30, what="the interactive prompt")
        announcer = Announcer(store, Directory(store, defs.get), pty_typist(runtime, pool), min_interval=0)
        announcer.last_event = await store.last_event_id()
        await store.send_message("operator", "lead", "please look", priority="high")
        await store.send_message("operator", "quiet", "no notice for me")
        typed = await announcer.step()
        assert typed == [("lead", "[crowd] 1 new message (high priority) from operator: call get_messages")]
        await wait_for(lambda: _contains(sessions["lead"], b"the hub says you have mail"), 30,
                       what="crowd-agent to recognise the notice")
        assert b"[crowd] 1 new message (high priority) from operator" in bytes(sessions["lead"].backlog)
        await asyncio.sleep(0.5)
        assert b"[crowd]" not in bytes(sessions["quiet"].backlog)
        # the notice was not taken as a command, and no message was consumed
        assert [m.read_at for m in await store.inbox("lead")] == [None]
        # a person at the terminal reads the inbox and answers
        sessions["lead"].write(b"inbox\r")
        await wait_for(lambda: _contains(sessions["lead"], b"operator: please look"), 30, what="the inbox listing")
        sessions["lead"].write(b"send quiet hello from the terminal\r")

        async def delivered():
            return [m for m in await store.inbox("quiet") if m.sender == "lead"]
        [m] = await wait_for(delivered, 30, what="the typed message")
        assert m.body == "hello from the terminal"


async def _contains(session, needle: bytes) -> bool:
    return needle in bytes(session.backlog)


async def test_on_task_agent_starts_when_work_arrives_and_stops_when_its_inbox_is_empty(setup, workspace):
    store, runtime, pool, defs = setup
    defs["helper"] = dataclasses.replace(
        agent_def(workspace, "helper", "helper", 0, command=["crowd-agent", "--role", "echo", "--poll", "0.3"]),
        launch="on_task", shutdown="inbox_empty")
    await store.upsert_agent("helper", path="helper", tier=0)
    async with Hub(workspace, store, definitions=defs.get) as hub:
        hub.follow_registry(interval=0.2)
        start, stop = runtime_actions(runtime, store, defs.get)
        policy = LaunchPolicy(store, Directory(store, defs.get), start, stop, grace=1.0, poll=0.2)
        policy.last_event = await store.last_event_id()
        assert await policy.step() == []
        assert await runtime.info("helper") is None  # nothing to do, nothing started
        await store.send_message("operator", "helper", "wake up")
        assert await policy.step() == [("launch", "helper")]
        assert (await runtime.info("helper")).running

        async def replied():
            return [m for m in await store.inbox("operator") if m.body == "echo: wake up"]
        await wait_for(replied, 60, what="the launched agent to answer")

        async def stopped():
            await policy.step()
            info = await runtime.info("helper")
            return info is not None and not info.running
        await wait_for(stopped, 60, what="the agent to be stopped once its inbox is empty")
    kinds = [(e.kind, e.subject) for e in await store.events_after(0, limit=10000, kinds=["hub.launch", "hub.shutdown"])]
    assert kinds == [("hub.launch", "helper"), ("hub.shutdown", "helper")]
    assert (await store.get_agent("helper")).state != "running"


async def test_a_hub_running_its_policies_launches_an_on_task_agent_that_then_answers(setup, workspace):
    store, runtime, pool, defs = setup
    defs["helper"] = dataclasses.replace(
        agent_def(workspace, "helper", "helper", 0, command=["crowd-agent", "--role", "echo"]), launch="on_task")
    await store.upsert_agent("helper", path="helper", tier=0)
    async with Hub(workspace, store, definitions=defs.get) as hub:
        hub.follow_registry(interval=0.2)
        hub.run_policies(runtime, pool)
        await asyncio.sleep(0.5)  # the policies start from the events after this point
        await store.send_message("operator", "helper", "are you there?")

        async def answered():
            return [m for m in await store.inbox("operator") if m.body == "echo: are you there?"]
        await wait_for(answered, 90, what="the on_task agent to be launched and answer")
    launches = await store.events_after(0, kinds=["hub.launch"])
    assert [(e.subject, e.detail["reason"]) for e in launches] == [("helper", "work arrived in its inbox")]


async def test_idle_agent_is_stopped_once_no_message_came_or_went_for_a_while(setup, workspace):
    store, runtime, pool, defs = setup
    defs["sleepy"] = dataclasses.replace(
        agent_def(workspace, "sleepy", "sleepy", 0, command=["crowd-agent", "--role", "echo"]), shutdown="idle")
    defs["busy"] = agent_def(workspace, "busy", "busy", 0, command=["crowd-agent", "--role", "echo"])  # shutdown: manual
    for name in defs:
        await store.upsert_agent(name, path=name, tier=0)
    start, stop = runtime_actions(runtime, store, defs.get)
    async with Hub(workspace, store, definitions=defs.get) as hub:
        for name in defs:
            await hub.open_door(name)
            await start(name)
        policy = LaunchPolicy(store, Directory(store, defs.get), start, stop, idle_after=1.5)
        policy.last_event = await store.last_event_id()
        assert await policy.step() == []  # just started: not idle yet

        async def stopped():
            await policy.step()
            info = await runtime.info("sleepy")
            return not info.running
        await wait_for(stopped, 60, what="the idle agent to be stopped")
        assert (await runtime.info("busy")).running  # manual shutdown: left alone
    [event] = await store.events_after(0, kinds=["hub.shutdown"])
    assert event.subject == "sleepy" and event.detail["reason"].startswith("idle for")
