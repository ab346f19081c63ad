"""The agent registry: register, update, state, status, remove — each change an event."""

from __future__ import annotations

import pytest

from qms.errors import InvalidInput, NotFound


async def test_register_update_and_list(store):
    a = await store.upsert_agent("erin", path="lead/erin", tier=1, parent="alice", description="helps")
    assert (a.name, a.path, a.tier, a.parent, a.description, a.state, a.status) == (
        "erin", "lead/erin", 1, "alice", "helps", "stopped", None
    )
    last = await store.last_event_id()
    same = await store.upsert_agent("erin", path="lead/erin", tier=1, parent="alice", description="helps")
    assert same == a and await store.last_event_id() == last  # nothing changed, no event
    moved = await store.upsert_agent("erin", path="qa/erin", tier=1, parent="carol")
    assert (moved.path, moved.parent, moved.description) == ("qa/erin", "carol", "")
    ev = (await store.events_after(last))[-1]
    assert (ev.kind, ev.subject, ev.actor) == ("agent.registered", "erin", "roster")
    assert ev.detail["new"] is False and ev.detail["path"] == "qa/erin"
    agents = await store.list_agents()
    assert [x.path for x in agents] == sorted(x.path for x in agents)  # tree order
    assert {x.name for x in agents} == {"alice", "bob", "carol", "dave", "erin"}  # never the operator


async def test_state_status_touch_and_remove(store):
    a = await store.set_agent_state("bob", "running", detail={"container": "abc"})
    assert a.state == "running" and "abc" in a.state_detail
    s = await store.set_agent_status("bob", "blocked", "waiting for review", actor="bob")
    assert (s.status, s.status_note) == ("blocked", "waiting for review")
    await store.touch_agent("bob")
    assert (await store.get_agent("bob")).last_seen is not None
    kinds = [e.kind for e in await store.events_after(0, subject="bob")]
    assert kinds[-2:] == ["agent.state", "agent.status"]
    await store.remove_agent("bob", actor="roster")
    assert await store.get_agent("bob") is None
    assert (await store.events_after(0, kinds="agent.removed"))[-1].subject == "bob"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.upsert_agent("operator", path="operator", tier=0),
        lambda s: s.upsert_agent("../x", path="x", tier=0),
        lambda s: s.upsert_agent("x", path="../x", tier=0),
        lambda s: s.upsert_agent("x", path="x", tier=-1),
        lambda s: s.upsert_agent("x", path="x", tier=0, parent="x"),
        lambda s: s.upsert_agent("x", path="x", tier=0, description="\x1b]0;pwned\x07"),
        lambda s: s.set_agent_status("bob", "sleeping", actor="bob"),
        lambda s: s.set_agent_state("bob", "Running!"),
        lambda s: s.set_agent_status("bob", "working", "a\x1b[2Jb", actor="bob"),
    ],
)
async def test_bad_registry_input_changes_nothing(store, snapshot, call):
    before = snapshot()
    with pytest.raises(InvalidInput):
        await call(store)
    assert snapshot() == before


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.remove_agent("ghost", actor="roster"),
        lambda s: s.set_agent_state("ghost", "running"),
        lambda s: s.set_agent_status("ghost", "working", actor="ghost"),
        lambda s: s.touch_agent("ghost"),
    ],
)
async def test_unknown_agent_is_not_found_and_changes_nothing(store, snapshot, call):
    before = snapshot()
    with pytest.raises(NotFound, match="ghost"):
        await call(store)
    assert snapshot() == before


async def test_a_state_that_wins_is_never_overwritten(store):
    """A supervisor marking an agent "restarting" must not overwrite a start recorded
    meanwhile: the condition is decided inside the write transaction."""
    await store.upsert_agent("lead", path="lead", tier=0)
    await store.set_agent_state("lead", "running", actor="operator")
    before = await store.last_event_id()
    agent = await store.set_agent_state("lead", "restarting", actor="supervisor", unless=("running",))
    assert agent.state == "running" and (await store.get_agent("lead")).state == "running"
    assert await store.events_after(before) == []
    await store.set_agent_state("lead", "crashed", actor="runtime")
    agent = await store.set_agent_state("lead", "restarting", actor="supervisor", unless=("running",))
    assert agent.state == "restarting"
