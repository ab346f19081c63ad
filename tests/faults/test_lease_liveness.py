"""Leases tied to liveness: a checkout held by an agent whose container crashed or stopped is
released after the grace period (an event with the reason); a holder that runs again within
the grace keeps it; the length is chosen per checkout, bounded, renewable by its holder (the
hub's renew_checkout over the agent's real door). Real engine, store file and sockets.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.hub.directory import Directory
from crowdtui.hub.hub import Hub
from crowdtui.hub.launch_policy import runtime_probe
from crowdtui.hub.supervisor import Supervisor
from crowdtui.hub.unix_transport import unix_client
from crowdtui.roster import AgentDef
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.state import StateFollower
from qms import Store
from qms.doc_rows import MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from qms.errors import Conflict, InvalidInput, PermissionDenied

from tests.waiting import wait_for as until

pytestmark = pytest.mark.docker


def sleeper(ws, name: str) -> AgentDef:
    return AgentDef(name=name, file=Path(ws.agents_dir) / name / "AGENT.md", rel_path=name, tier=0,
                    command=("sleep", "infinity"))


@pytest.fixture
async def crew(workspace, agent_image):
    store = await Store.open(workspace.db_path)
    defs = {n: sleeper(workspace, n) for n in ("alice", "bob")}
    for d in defs.values():
        await store.upsert_agent(d.name, path=d.rel_path, tier=0)
    runtime = Runtime(workspace)
    follower = StateFollower(runtime, store)
    halt = asyncio.Event()
    task = asyncio.create_task(follower.run(halt))
    await follower.ready.wait()
    yield store, defs, runtime
    halt.set()
    follower.close()
    await asyncio.gather(task, return_exceptions=True)
    for name in defs:
        await runtime.remove(name)
    runtime.close()
    await store.close()


async def state_of(store, name):
    return (await store.get_agent(name)).state


async def test_a_crashed_or_stopped_holders_leases_are_released_after_the_grace(crew):
    store, defs, runtime = crew
    sup = Supervisor(store, Directory(store, defs.get), probe=runtime_probe(runtime), lease_grace=0.5)
    sup.last_event = await store.last_event_id()
    for d in defs.values():
        await runtime.start(d)
    await until(lambda: _all(store, defs, "running"), what="both running")
    a1 = await store.create_document("operator", "SOP", "A", "v1")
    b1 = await store.create_document("operator", "SOP", "B")
    mine = await store.create_document("operator", "SOP", "Mine")
    await store.checkout(a1.id, "alice", lease_seconds=7200)
    await store.checkin(a1.id, "alice", "v2 from alice")  # acknowledged before the crash
    await store.checkout(a1.id, "alice", lease_seconds=7200)
    await store.checkout(b1.id, "bob")
    await store.checkout(mine.id, "operator")

    (await runtime.container("alice")).kill()  # SIGKILL: exit 137
    await runtime.stop("bob")
    await until(lambda: _all(store, defs, None, {"alice": "crashed", "bob": "stopped"}), what="down")
    await sup.step()
    assert (await store.get_document(a1.id)).holder == "alice"  # the grace has not passed yet
    await asyncio.sleep(0.6)
    await sup.step()

    released = [e for e in await store.events_after(0, kinds=["doc.lease_released"])]
    assert {(e.subject, e.detail["holder"], e.detail["reason"]) for e in released} == {
        (a1.id, "alice", "holder crashed (exit 137)"), (b1.id, "bob", "holder stopped")}
    for doc in (a1, b1):
        assert (await store.get_document(doc.id)).holder is None
    assert (await store.get_document(mine.id)).holder == "operator"  # the operator is no container
    kept = await store.get_document(a1.id)
    assert (kept.version, kept.content) == (2, "v2 from alice")  # nothing acknowledged lost
    taken = await store.checkout(a1.id, "bob")  # free for the next one
    assert taken.holder == "bob"


async def test_a_holder_running_again_within_the_grace_keeps_its_lease(crew):
    store, defs, runtime = crew
    sup = Supervisor(store, Directory(store, defs.get), probe=runtime_probe(runtime), lease_grace=1.0)
    sup.last_event = await store.last_event_id()
    await runtime.start(defs["alice"])
    await until(lambda: _all(store, {"alice": 0}, "running"), what="alice running")
    doc = await store.create_document("operator", "SOP", "A")
    await store.checkout(doc.id, "alice")
    (await runtime.container("alice")).kill()
    await until(lambda: _all(store, {"alice": 0}, "crashed"), what="alice crashed")
    await sup.step()  # the release is due in 1 s
    await runtime.start(defs["alice"])
    await until(lambda: _all(store, {"alice": 0}, "running"), what="alice running again")
    await sup.step()  # running again: the release is called off
    await asyncio.sleep(1.1)
    await sup.step()
    assert (await store.get_document(doc.id)).holder == "alice"
    assert not await store.events_after(0, kinds=["doc.lease_released"])


async def test_lease_length_is_chosen_bounded_and_renewed_by_its_holder_only(crew, workspace):
    store, defs, _ = crew
    doc = await store.create_document("operator", "SOP", "A")
    for bad in (MIN_LEASE_SECONDS - 1, MAX_LEASE_SECONDS + 1, True, "60"):
        with pytest.raises(InvalidInput, match="lease_seconds must be from 60 to 86400"):
            await store.checkout(doc.id, "alice", lease_seconds=bad)
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    try:
        async with Client(unix_client(await hub.open_door("alice"))) as alice, \
                Client(unix_client(await hub.open_door("bob"))) as bob:
            held = (await alice.call_tool("checkout_document", {"doc_id": doc.id, "lease_seconds": 120})).structured_content
            assert held["lease_expires_at"] - held["taken_at"] == pytest.approx(120)
            names = {t.name for t in (await alice.list_tools()).tools}
            assert "renew_checkout" in names
            before = time.time()
            renewed = (await alice.call_tool("renew_checkout", {"doc_id": doc.id})).structured_content
            assert renewed["holder"] == "alice"
            assert before + 119 < renewed["lease_expires_at"] < time.time() + 121  # the length chosen at checkout
            longer = (await alice.call_tool("renew_checkout", {"doc_id": doc.id, "lease_seconds": 3000})).structured_content
            assert longer["lease_expires_at"] > time.time() + 2900
            with pytest.raises(MCPError, match="checked out by alice, not bob"):
                await bob.call_tool("renew_checkout", {"doc_id": doc.id})
    finally:
        await hub.stop()
    refused = await store.events_after(0, kinds=["doc.refused"])
    assert [(e.actor, e.detail["action"]) for e in refused] == [("bob", "renew the checkout")]
    async with store.write() as db:  # the lease runs out (time passing)
        await db.execute("UPDATE documents SET lease_expires_at = ? WHERE id = ?", (time.time() - 1, doc.id))
    with pytest.raises(Conflict, match="ran out at .* check it out again"):
        await store.renew_checkout(doc.id, "alice")
    await store.break_lock(doc.id, "operator")  # breaking a lock by the operator stays
    with pytest.raises(PermissionDenied, match="not checked out"):
        await store.renew_checkout(doc.id, "alice")


async def _all(store, names, state, each=None):
    want = each or {n: state for n in names}
    return all([await state_of(store, n) == s for n, s in want.items()])
