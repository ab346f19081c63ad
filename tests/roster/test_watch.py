"""Hot reload: files under agents/ change, watch_roster yields added/changed/removed."""

from __future__ import annotations

import asyncio
import os
import shutil

from crowdtui.roster import RosterDiff, load_roster, watch_roster

WAIT = 15.0  # generous: a reload normally arrives well under a second


def save(path, text: str) -> None:
    """Save like an editor does: write a temporary file, then rename it over the old one."""
    tmp = path.with_name(path.name + ".tmp~")
    tmp.write_text(text)
    os.replace(tmp, path)


async def next_update(it):
    return await asyncio.wait_for(anext(it), WAIT)


async def test_watch_reports_added_changed_removed(sample_workspace):
    agents = sample_workspace.agents_dir
    stop = asyncio.Event()
    it = watch_roster(sample_workspace, initial=load_roster(sample_workspace), stop_event=stop)
    # awatch starts watching on the first __anext__; make changes once it is waiting
    pending = asyncio.ensure_future(next_update(it))
    await asyncio.sleep(0.5)

    (agents / "scout").mkdir()
    (agents / "scout" / "AGENT.md").write_text("---\ndescription: new\n---\nHi.\n")
    update = await pending
    assert update.diff == RosterDiff(added=("scout",))
    assert update.roster.get("scout").description == "new"

    qa = agents / "qa" / "AGENT.md"
    save(qa, qa.read_text().replace("launch: manual", "launch: always"))
    update = await next_update(it)
    assert update.diff == RosterDiff(changed=("qa",))
    assert update.roster.get("qa").launch == "always"

    shutil.rmtree(agents / "lead")
    update = await next_update(it)
    assert update.diff == RosterDiff(removed=("lead", "researcher"))
    assert update.roster.names() == ["echo", "qa", "scout"]

    stop.set()
    await it.aclose()


async def test_watch_reports_a_broken_edit_without_dropping_the_agent(sample_workspace):
    echo = sample_workspace.agents_dir / "echo" / "AGENT.md"
    good = echo.read_text()
    stop = asyncio.Event()
    it = watch_roster(sample_workspace, stop_event=stop)
    pending = asyncio.ensure_future(next_update(it))
    await asyncio.sleep(0.5)

    save(echo, good.replace("launch: manual", "launch: never"))
    update = await pending
    assert update.diff == RosterDiff()  # nothing added, changed or removed
    assert "echo" in update.roster
    [problem] = update.roster.problems
    assert problem.file == "agents/echo/AGENT.md" and problem.key == "launch"
    assert "last good definition of 'echo' stays in use" in problem.message

    save(echo, good)
    update = await next_update(it)
    assert update.roster.problems == [] and update.diff == RosterDiff()
    stop.set()
    await it.aclose()


async def test_watch_follows_the_agents_folder_when_it_is_replaced(sample_workspace):
    agents = sample_workspace.agents_dir
    stop = asyncio.Event()
    it = watch_roster(sample_workspace, stop_event=stop, check_every_ms=200)
    pending = asyncio.ensure_future(next_update(it))
    await asyncio.sleep(0.5)

    shutil.move(agents, sample_workspace.root / "agents.old")
    update = await pending
    assert update.diff == RosterDiff(removed=("echo", "lead", "qa", "researcher"))

    shutil.copytree(sample_workspace.root / "agents.old" / "qa", agents / "qa")
    update = await next_update(it)
    assert update.diff == RosterDiff(added=("qa",))

    # and the new folder is watched like the old one
    (agents / "qa" / "AGENT.md").unlink()
    update = await next_update(it)
    assert update.diff == RosterDiff(removed=("qa",))
    stop.set()
    await it.aclose()
