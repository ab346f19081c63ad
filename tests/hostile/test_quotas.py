"""Issue 18, item 2 (store side): one agent must not be able to fill the disk through the hub.

The attacks, as reproduced, from a tier-0 agent over its real MCP socket (real store file,
real hub, real MCP client): 300 broadcasts of 65 KB (``to="*"``), and 100 scheduled tasks
``every:1s`` with 16 KB texts for itself that kept firing after it was stopped. Now each
is refused past the agent's quota (``qms.quotas``, default limits), the database stops
growing, every refusal is a ``quota.refused`` event, and an agent's tasks fire only
while it runs and are removed when it leaves the roster.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.roster import AgentDef
from qms.names import DISPATCH

REPO = Path(__file__).resolve().parents[2]
T0 = 1795320000.0  # 2026-11-22T04:00:00Z: the manual clock of the scheduler
BODY = 65_000  # the attack's broadcast body (the store's limit for one body is 64 KiB)
CREW = [("mallory", "mallory", 0, None), ("lead", "lead", 0, None), ("worker", "lead/worker", 1, "lead"),
        ("qa", "qa", 0, None)]


def definitions(ws) -> dict[str, AgentDef]:
    return {
        name: AgentDef(name=name, file=ws.agents_dir / rel / "AGENT.md", rel_path=rel, tier=tier, parent=parent,
                       children=tuple(n for n, _, _, p in CREW if p == name), description=f"the {name}")
        for name, rel, tier, parent in CREW
    }


@pytest.fixture
async def crew(workspace):
    """A real store with the crew registered, a started hub, dispatch's tools, open doors."""
    from qms import Store

    from crowdtui.dispatch.clock import ManualClock
    from crowdtui.dispatch.mcp_tools import add_dispatch_tools
    from crowdtui.dispatch.service import Dispatch
    from crowdtui.hub.hub import Hub

    store = await Store.open(workspace.db_path)
    for name, rel, tier, parent in CREW:
        await store.upsert_agent(name, path=rel, tier=tier, parent=parent, description=f"the {name}")
    dispatch = Dispatch(store, clock=ManualClock(T0), log=lambda line: None)
    hub = Hub(workspace, store, definitions=definitions(workspace).get)
    await hub.start()
    add_dispatch_tools(hub.server, dispatch)
    doors = {name: await hub.open_door(name) for name, *_ in CREW}
    try:
        yield store, dispatch, doors
    finally:
        await hub.stop()
        await dispatch.stop()
        await store.close()


def client(door):
    from crowdtui.hub.unix_transport import unix_client

    return Client(unix_client(door))


async def attempt(c: Client, tool: str, args: dict) -> str | None:
    """Call ``tool``; None when it succeeded, else the refusal's message."""
    try:
        await c.call_tool(tool, args)
    except MCPError as exc:
        return exc.error.message
    return None


def stored_bytes(db_path: Path) -> int:
    """The database file's size once the WAL is folded into it (what the disk holds for it)."""
    con = sqlite3.connect(db_path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    wal = Path(f"{db_path}-wal")
    return db_path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def cli(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


async def refusals(store, actor: str) -> list:
    return [e for e in await store.events_after(0, kinds="quota.refused", limit=10_000) if e.actor == actor]


async def test_broadcast_flood_is_refused_past_the_quota_and_the_database_stops_growing(crew, workspace):
    store, _engine, doors = crew
    q = store.quotas  # the defaults: nobody configured anything
    recipients = len(CREW) - 1
    fits = q.message_bytes_per_minute // (recipients * BODY)  # broadcasts within the byte quota
    assert 0 < fits < 300
    before = stored_bytes(workspace.db_path)
    t0 = time.monotonic()
    results = []
    async with client(doors["mallory"]) as c:
        for i in range(300):
            results.append(await attempt(c, "send_message", {"to": "*", "body": f"{i:05d}" + "x" * (BODY - 5)}))
    elapsed = time.monotonic() - t0
    sent = sum(r is None for r in results)
    # the window slides: a very slow machine may get one more window's worth
    assert fits <= sent <= fits * (1 + int(elapsed // 60))
    assert results[:fits] == [None] * fits
    refused = [r for r in results if r is not None]
    assert refused and all("message_bytes_per_minute" in r and "try again after" in r for r in refused)
    assert "mallory is over its quota" in refused[0] and "4.0 MiB" in refused[0]
    grown = stored_bytes(workspace.db_path) - before
    # Stated bound: the quota's 4 MiB of bodies, their indexes and events, and about 2 KB of audit
    # (hub.call + quota.refused) per refused call: under 6 MB. Unbounded it was 300 x 3 x 65 KB = 58.5 MB.
    assert grown < 6_000_000, grown
    assert sent * recipients * BODY <= grown

    # the database stops growing: another 100 broadcasts add only their audit events
    before = stored_bytes(workspace.db_path)
    async with client(doors["mallory"]) as c:
        more = [await attempt(c, "send_message", {"to": "*", "body": "y" * BODY}) for _ in range(100)]
    assert all(r is not None for r in more)
    assert stored_bytes(workspace.db_path) - before < 100 * 3_000
    stored = await store.query("SELECT COUNT(*), TOTAL(size) FROM messages WHERE sender = 'mallory'")
    assert tuple(stored[0]) == (sent * recipients, float(sent * recipients * BODY))

    # every refusal is an event, actor = the agent, with the limit and the use
    events = await refusals(store, "mallory")
    assert len(events) == len(refused) + 100
    assert {e.subject for e in events} == {"message_bytes_per_minute"}
    assert events[0].detail["max"] == q.message_bytes_per_minute and events[0].detail["retry_at"] > events[0].at

    # the quota is the agent's own: others, and the operator, are not held back by it
    async with client(doors["qa"]) as c:
        assert await attempt(c, "send_message", {"to": "*", "body": "still fine"}) is None
    assert len(await store.send_message("operator", "*", "z" * BODY)) == len(CREW)


async def test_a_burst_of_small_messages_hits_the_count_quota(crew):
    store, _engine, doors = crew
    store.quotas = type(store.quotas)(messages_per_minute=30)
    async with client(doors["mallory"]) as c:
        results = [await attempt(c, "send_message", {"to": "*", "body": "hi"}) for _ in range(12)]
    assert results.count(None) == 10  # 3 recipients each: 30 message rows
    assert "messages_per_minute = 30" in results[-1] and "30 used, this asks for 3" in results[-1]
    async with client(doors["mallory"]) as c:  # one send larger than the whole quota says so
        store.quotas = type(store.quotas)(messages_per_minute=2)
        msg = await attempt(c, "send_message", {"to": "*", "body": "hi"})
    assert "this alone is over the limit" in msg and "fewer recipients" in msg
    assert len(await refusals(store, "mallory")) == 3


async def test_two_writers_racing_at_the_quota_never_pass_it_together(crew, workspace):
    """Counted in the send's own transaction: two store connections sending as one agent at
    once store exactly the quota, never more."""
    from qms import Store
    from qms.quotas import QuotaExceeded, Quotas

    store, _engine, _doors = crew
    other = await Store.open(workspace.db_path)
    try:
        for s in (store, other):
            s.quotas = Quotas(messages_per_minute=50)

        async def flood(s) -> int:
            ok = 0
            for i in range(40):
                try:
                    await s.send_message("mallory", "qa", f"m{i}")
                    ok += 1
                except QuotaExceeded:
                    pass
            return ok

        assert sum(await asyncio.gather(flood(store), flood(other))) == 50
    finally:
        await other.close()
    assert len(await store.inbox("qa", limit=1000)) == 50
    assert len(await refusals(store, "mallory")) == 30


async def test_hundred_tasks_every_second_are_refused(crew):
    store, _engine, doors = crew
    q = store.quotas
    async with client(doors["mallory"]) as c:
        # the attack as reproduced: 100 tasks every:1s with 16 KB texts for itself
        attack = [await attempt(c, "add_task", {"name": f"t{i}", "agent": "mallory", "schedule": "every:1s",
                                                "text": "w" * 16_000}) for i in range(100)]
        assert all(r is not None and "task_max_text" in r for r in attack)
        # short texts: the interval is refused (an every: and a cron with a seconds field)
        short = await attempt(c, "add_task", {"name": "s", "agent": "mallory", "schedule": "every:1s", "text": "go"})
        assert "task_min_interval" in short and "60 s apart" in short
        cron = await attempt(c, "add_task", {"name": "c", "agent": "mallory", "schedule": "cron:* * * * * *",
                                             "text": "go"})
        assert "task_min_interval" in cron
        # within every limit but the count: the first tasks_max pass, the rest are refused
        many = [await attempt(c, "add_task", {"name": f"m{i}", "agent": "mallory", "schedule": "every:1m",
                                              "text": "w" * 1000}) for i in range(100)]
    assert many.count(None) == q.tasks_max == 20 and many[:20] == [None] * 20
    assert all("tasks_max = 20" in r and "remove one of your tasks" in r for r in many[20:])
    assert (await store.query("SELECT COUNT(*) FROM engine_tasks"))[0][0] == 20
    events = await refusals(store, "mallory")
    assert len(events) == 100 + 2 + 80
    assert [e.subject for e in events].count("tasks_max") == 80

    # the operator sees who created each task
    r = await asyncio.to_thread(cli, store_workspace(store), "task", "ls", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert {(t["created_by"], t["by_agent"]) for t in listed} == {("mallory", True)}
    r = await asyncio.to_thread(cli, store_workspace(store), "task", "ls")
    assert "by mallory (agent)" in r.stdout.splitlines()[0]


def store_workspace(store):
    from crowdtui.workspace import load_workspace

    return load_workspace(Path(store.path).parents[1])


async def test_a_stopped_creators_tasks_stop_firing_and_go_when_it_leaves(crew):
    from crowdtui.dispatch import tasks

    store, dispatch, doors = crew
    clock = dispatch.clock
    async with client(doors["mallory"]) as c:
        assert await attempt(c, "add_task", {"name": "nag", "agent": "mallory", "schedule": "every:1m",
                                             "text": "do it again"}) is None
    await tasks.add_task(store, name="standup", agent="qa", schedule="every:1m", text="post the standup",
                         actor="operator", now=clock.now())
    await store.set_agent_state("mallory", "running")

    async def fired():
        return sorted(tasks_by_id[r.task_id] for r in await dispatch.run_due_tasks())

    tasks_by_id = {t.id: t.name for t in await tasks.list_tasks(store)}
    clock.advance(60)
    assert await fired() == ["nag", "standup"]
    await store.set_agent_state("mallory", "stopped")
    for _ in range(30):  # half an hour while its creator is stopped: only the operator's task fires
        clock.advance(60)
        assert await fired() == ["standup"]
    assert len(await store.inbox("mallory", limit=1000)) == 1
    assert await tasks.next_due_at(store) == clock.now() + 60  # nothing overdue left to spin on
    await store.set_agent_state("mallory", "running")
    runs = await dispatch.run_due_tasks()
    assert [(tasks_by_id[r.task_id], r.missed) for r in runs] == [("nag", 29)]  # once, missed folded in
    assert len(await store.inbox("mallory", limit=1000)) == 2

    # the creator leaves the roster: its tasks are removed, the operator's stay
    await store.remove_agent("mallory", actor="roster")
    clock.advance(60)
    assert await fired() == ["standup"]
    assert [t.name for t in await tasks.list_tasks(store)] == ["standup"]
    [removed] = await store.events_after(0, kinds="task.removed")
    assert (removed.actor, removed.subject) == (DISPATCH, "nag")
    assert "its creator mallory left the roster" in removed.detail["reason"]


async def test_an_agents_task_is_held_to_the_minimum_gap_whatever_its_schedule(crew):
    """A schedule whose runs bunch up later than the look-ahead at creation still fires at
    most once per task_min_interval."""
    from crowdtui.dispatch import tasks

    store, dispatch, _doors = crew
    await store.set_agent_state("mallory", "running")
    t = await tasks.add_task(store, name="bunch", agent="mallory", schedule="every:1m", text="x",
                             actor="mallory", now=dispatch.clock.now())
    assert (t.by_agent, t.min_gap) == (True, 60.0)
    await store.write_sync(lambda conn: conn.execute(  # as if its schedule said every second
        "UPDATE engine_tasks SET schedule = 'every:1s' WHERE name = 'bunch'"))
    count = 0
    for _ in range(120):
        dispatch.clock.advance(1)
        count += len(await dispatch.run_due_tasks())
    assert count == 2  # two minutes, one run each


async def test_document_versions_past_the_quota_are_refused(crew):
    store, _engine, doors = crew
    q = store.quotas
    async with client(doors["mallory"]) as c:
        results = [await attempt(c, "create_document", {"doc_type": "SPEC", "title": f"spam {i}", "content": "x"})
                   for i in range(q.doc_versions_per_hour + 5)]
        assert results.count(None) == q.doc_versions_per_hour
        assert all("doc_versions_per_hour" in r and "try again after" in r for r in results[q.doc_versions_per_hour:])
        store.quotas = type(q)(doc_bytes_total=3 * 512 * 1024 + 1000, doc_versions_per_hour=1000)
        big = "b" * (512 * 1024)  # a 1 MiB text would not fit in one JSON-RPC line of the hub
        await store.create_document("lead", "SPEC", "lead's", big)  # another agent's bytes are its own
        doc = await store.create_document("mallory", "SPEC", "big", "")
        await store.checkout(doc.id, "mallory")
        outcomes = []
        for _ in range(4):
            outcomes.append(await attempt(c, "checkin_document", {"doc_id": doc.id, "content": big}))
            await attempt(c, "checkout_document", {"doc_id": doc.id})
    assert outcomes[:3] == [None, None, None] and "doc_bytes_total = 1.5 MiB" in outcomes[3]
    assert (await store.get_document(doc.id)).version == 4  # versions 2-4; the fourth checkin left nothing
    subjects = [e.subject for e in await refusals(store, "mallory")]
    assert subjects == ["doc_versions_per_hour"] * 5 + ["doc_bytes_total"]
    # the operator is not limited by the agents' quotas
    assert (await store.create_document("operator", "SPEC", "mine", big)).version == 1


def test_quotas_from_crowd_toml_are_checked():
    from qms.errors import InvalidInput
    from qms.quotas import Quotas

    assert Quotas.from_config(None) == Quotas()
    q = Quotas.from_config({"messages_per_minute": 10, "task_min_interval": 300})
    assert (q.messages_per_minute, q.task_min_interval, q.tasks_max) == (10, 300.0, Quotas().tasks_max)
    with pytest.raises(InvalidInput, match="unknown .quotas. key.*messages_per_hour.*known keys"):
        Quotas.from_config({"messages_per_hour": 5})
    for bad in (-1, "10", True, 1.5):
        with pytest.raises(InvalidInput, match="messages_per_minute must be a number"):
            Quotas.from_config({"messages_per_minute": bad})


async def test_the_hub_and_the_cli_apply_crowd_toml_quotas(tmp_path):
    """[quotas] in crowd.toml is what the hub (and `crowdtui --as AGENT`) enforce."""
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.workspace import init_workspace, load_workspace

    ws, _ = init_workspace(tmp_path / "ws", sample=False)
    (ws.root / "crowd.toml").write_text((ws.root / "crowd.toml").read_text() + "\n[quotas]\nmessages_per_minute = 3\n")
    (ws.agents_dir / "lead").mkdir(parents=True, exist_ok=True)
    (ws.agents_dir / "lead" / "AGENT.md").write_text("---\nname: lead\ndescription: leads\n---\nLead.\n")
    ws = load_workspace(ws.root)
    store = await Store.open(ws.db_path)
    for name, rel, tier, parent in CREW:
        await store.upsert_agent(name, path=rel, tier=tier, parent=parent, description=f"the {name}")
    hub = Hub(ws, store, definitions=definitions(ws).get)
    await hub.start()
    try:
        door = await hub.open_door("lead")
        async with client(door) as c:
            outcomes = [await attempt(c, "send_message", {"to": "operator", "body": f"m{i}"}) for i in range(5)]
        assert outcomes[:3] == [None, None, None]
        assert outcomes[3] and "messages_per_minute" in outcomes[3], outcomes
    finally:
        await hub.stop()
        await store.close()
    result = cli(ws, "--as", "lead", "send", "operator", "one more")
    assert result.returncode != 0 and "messages_per_minute" in result.stderr, result.stderr
