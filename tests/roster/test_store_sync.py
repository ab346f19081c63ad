"""The roster in the store: registry rows and agent.added/changed/removed events."""

from __future__ import annotations

from qms import Store

from crowdtui.roster import RosterDiff, diff_rosters, load_roster, record_roster_changes, sync_roster


async def test_sync_registers_the_roster_and_records_changes(sample_workspace):
    store = await Store.open(sample_workspace.db_path)
    try:
        roster = load_roster(sample_workspace)
        diff = await sync_roster(store, roster)
        assert diff == RosterDiff(added=("echo", "lead", "qa", "researcher"))
        agents = {a.name: a for a in await store.list_agents()}
        assert (agents["researcher"].tier, agents["researcher"].parent) == (1, "lead")
        assert agents["researcher"].path == "lead/researcher"
        assert agents["qa"].description == roster.get("qa").description
        added = await store.events_after(0, kinds=["agent.added"])
        assert sorted(e.subject for e in added) == ["echo", "lead", "qa", "researcher"]
        assert all(e.actor == "roster" for e in added)

        # a second sync with nothing changed records nothing
        last = await store.last_event_id()
        assert await sync_roster(store, roster) == RosterDiff()
        assert await store.last_event_id() == last

        # an edit and a removal, as a reload would see them
        qa = sample_workspace.agents_dir / "qa" / "AGENT.md"
        qa.write_text(qa.read_text().replace("Reviews documents", "Checks documents"))
        (sample_workspace.agents_dir / "echo" / "AGENT.md").unlink()
        new = load_roster(sample_workspace, previous=roster)
        diff = diff_rosters(roster, new)
        assert diff == RosterDiff(changed=("qa",), removed=("echo",))
        await record_roster_changes(store, new, diff)
        assert await store.get_agent("echo") is None
        assert (await store.get_agent("qa")).description.startswith("Checks documents")
        events = await store.events_after(last, kinds=["agent.changed", "agent.removed"])
        assert [(e.kind, e.subject) for e in events] == [("agent.changed", "qa"), ("agent.removed", "echo")]
        assert events[0].detail["path"] == "qa"
    finally:
        await store.close()


async def test_sync_removes_agents_whose_folders_went_away_while_nothing_watched(sample_workspace):
    store = await Store.open(sample_workspace.db_path)
    try:
        await sync_roster(store, load_roster(sample_workspace))
        (sample_workspace.agents_dir / "qa" / "AGENT.md").unlink()
        diff = await sync_roster(store, load_roster(sample_workspace))
        assert diff == RosterDiff(removed=("qa",))
        assert sorted(a.name for a in await store.list_agents()) == ["echo", "lead", "researcher"]
    finally:
        await store.close()


async def test_follow_roster_records_hot_reloads_in_the_store(sample_workspace):
    import asyncio

    from crowdtui.roster import follow_roster

    store = await Store.open(sample_workspace.db_path)
    stop = asyncio.Event()
    updates: asyncio.Queue = asyncio.Queue()
    task = asyncio.create_task(follow_roster(sample_workspace, store, stop_event=stop,
                                             on_update=updates.put_nowait))
    try:
        async def registered():
            while len(await store.list_agents()) < 4:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(registered(), 15)
        await asyncio.sleep(0.5)  # the watcher is running
        scout = sample_workspace.agents_dir / "lead" / "scout"
        scout.mkdir()
        (scout / "AGENT.md").write_text("---\ndescription: looks around\n---\n")
        update = await asyncio.wait_for(updates.get(), 15)
        assert update.diff == RosterDiff(added=("scout",))
        agent = await store.get_agent("scout")
        assert (agent.tier, agent.parent, agent.path) == (1, "lead", "lead/scout")
        [event] = await store.events_after(0, kinds=["agent.added"], subject="scout")
        assert event.detail == {"path": "lead/scout", "tier": 1, "parent": "lead",
                                "file": "agents/lead/scout/AGENT.md"}
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await store.close()
