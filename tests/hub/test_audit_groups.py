"""Audit records of read-only calls and refusals are written in groups, without holding
the answer; a call that changes something still waits for its records (``hub.calling``
before it runs, ``hub.call`` before the answer). ``crowdtui.hub.eventlog`` states the bound:
an answer never leaves behind an unwritten record older than 100 ms."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.hub.eventlog import EventLog
from crowdtui.hub.unix_transport import unix_client


async def kinds_of(store, actor):
    return [(e.kind, e.subject) for e in await store.events_after(0, limit=100_000, kinds=["hub.*"])
            if e.actor == actor]


async def test_read_only_calls_and_refusals_are_all_on_record_after_a_clean_stop(hub, store):
    path = await hub.open_door("narrow")  # may send to lead and read its inbox, nothing else
    async with Client(unix_client(path)) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert tools["get_messages"].annotations.read_only_hint is True  # clients see it too
        assert not (tools["send_message"].annotations and tools["send_message"].annotations.read_only_hint)
        for _ in range(30):
            await c.call_tool("get_messages", {"limit": 5})
        for _ in range(10):
            try:
                await c.call_tool("create_document", {"doc_type": "SOP", "title": "no"})
            except MCPError:
                pass
            else:
                raise AssertionError("narrow may not create documents")
        await c.call_tool("send_message", {"to": "lead", "body": "hello"})
    await hub.stop()  # drains the grouped records before it says stopped
    seen = await kinds_of(store, "narrow")
    assert seen.count(("hub.call", "get_messages")) == 30
    assert ("hub.calling", "get_messages") not in seen  # read-only: one record per call
    assert seen.count(("hub.denied", "create_document")) == 10
    assert seen[-2:] == [("hub.calling", "send_message"), ("hub.call", "send_message")]  # in order, after the rest
    stopped = [e for e in await store.events_after(0, limit=100_000, kinds=["hub.stopped"])]
    last_call = max(e.id for e in await store.events_after(0, limit=100_000, kinds=["hub.call", "hub.denied"]))
    assert stopped and stopped[-1].id > last_call


async def test_an_answer_waits_for_the_disk_once_the_oldest_unwritten_record_is_100_ms_old(store):
    log = EventLog(store)
    blocker = sqlite3.connect(str(store.path), isolation_level=None, timeout=5)
    blocker.execute("BEGIN IMMEDIATE")  # the writer cannot commit anything until this ends
    try:
        t0 = time.monotonic()
        await asyncio.wait_for(log.note("probe", "hub.call", "get_messages", {"n": 0}), 1)  # not held
        assert time.monotonic() - t0 < 0.05
        await asyncio.sleep(0.15)  # the record is now older than the bound, still unwritten
        assert log.lag() > 0.1
        late = asyncio.create_task(log.note("probe", "hub.call", "get_messages", {"n": 1}))
        await asyncio.sleep(0.3)
        assert not late.done(), "an answer went out while a record older than 100 ms was unwritten"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await asyncio.wait_for(late, 30)
    assert log.lag() == 0.0
    written = [e.detail["n"] for e in await store.events_after(0, limit=100, kinds=["hub.call"]) if e.actor == "probe"]
    assert written == [0, 1]


async def test_a_record_that_cannot_be_written_fails_only_its_own_awaiting_call(store):
    log = EventLog(store)
    await log.note("probe", "hub.call", "x", {"ok": True})
    try:
        await log.append("Probe Agent", "hub.call", "x")  # not a name: refused alone
    except Exception as exc:
        assert "Probe Agent" in str(exc)
    else:
        raise AssertionError("an event with a bad actor was accepted")
    good = await log.append("probe", "hub.call", "y", {"ok": True})
    await log.drain()
    kept = [(e.id, e.subject) for e in await store.events_after(0, limit=100) if e.actor == "probe"]
    assert [s for _, s in kept] == ["x", "y"] and kept[-1][0] == good
