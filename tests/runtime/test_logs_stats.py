"""Logs (tail, merged, follow) and stats through the Python API the TUI uses."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.roster import Resources
from crowdtui.runtime.containers import NoContainer
from crowdtui.runtime.logs import follow_logs, plain, read_logs
from crowdtui.runtime.stats import collect
from tests.waiting import wait_for

pytestmark = pytest.mark.docker


def test_plain_strips_terminal_sequences():
    assert plain("\x1b[1;31mred\x1b[0m text\r\n") == "red text"
    assert plain("\x1b]0;window title\x07prompt$ ") == "prompt$ "
    assert plain("progress 10%\rprogress 100%") == "progress 100%"
    assert plain("bell\x07 and \x1b(B charset") == "bell and  charset"
    assert plain("naïve → ünïcode") == "naïve → ünïcode"


async def test_read_logs_merges_agents_in_time_order(runtime, agent):
    await runtime.start(agent("first", command=("bash", "-c", "echo a1; sleep 2; echo a2; sleep infinity")))
    await runtime.start(agent("second", command=("bash", "-c", "echo b1; sleep infinity")))

    async def all_three():
        lines = await read_logs(runtime)
        return lines if len(lines) >= 3 else None

    lines = await wait_for(all_three, timeout=10)
    assert [(l.agent, l.text) for l in lines] == [("first", "a1"), ("second", "b1"), ("first", "a2")]
    assert lines[0].format(6) == "first  | a1"
    only = await read_logs(runtime, ["second"])
    assert [l.text for l in only] == ["b1"]


async def test_follow_logs_streams_new_lines_until_stopped(runtime, agent):
    await runtime.start(agent("talker", command=(
        "bash", "-c", "echo before; sleep 1; for i in 1 2 3; do echo after $i; sleep 0.2; done; sleep infinity")))
    await wait_for(lambda: _has_line(runtime, "talker", "before"))
    stop = asyncio.Event()
    got: list[str] = []

    async def reader():
        async for line in follow_logs(runtime, ["talker"], tail=5, stop_event=stop):
            got.append(line.text)
            if line.text == "after 3":
                stop.set()

    await asyncio.wait_for(reader(), 20)
    assert got == ["before", "after 1", "after 2", "after 3"]


async def test_follow_ends_when_the_container_stops(runtime, agent):
    await runtime.start(agent("brief", command=("bash", "-c", "echo bye; sleep 1")))
    lines = [l.text async for l in follow_logs(runtime, ["brief"])]
    assert lines == ["bye"]


async def test_logs_of_agent_without_container_is_a_clear_error(runtime):
    with pytest.raises(NoContainer, match="crowdtui up ghost"):
        await read_logs(runtime, ["ghost"])


async def test_stats_report_cpu_and_memory_per_running_agent(runtime, agent):
    await runtime.start(agent("busy", command=("bash", "-c", "while :; do :; done"),
                              resources=Resources(cpus=0.5, memory="96m")))
    await runtime.start(agent("idle"))
    await runtime.start(agent("gone", command=("true",)))
    await wait_for(lambda: _state(runtime, "gone", "exited"))
    stats = {s.name: s for s in await collect(runtime)}
    assert set(stats) == {"busy", "idle"}  # only running agents
    assert stats["busy"].cpu > 10.0  # a busy loop capped at half a CPU
    assert stats["idle"].cpu < stats["busy"].cpu
    assert stats["busy"].memory_limit == 96 * 1024 * 1024
    assert 0 < stats["idle"].memory < stats["idle"].memory_limit
    assert stats["idle"].pids >= 2
    assert stats["busy"].to_json()["memory_percent"] > 0


async def _has_line(runtime, name, text):
    return any(l.text == text for l in await read_logs(runtime, [name]))


async def _state(runtime, name, state):
    info = await runtime.info(name)
    return info is not None and info.state == state
