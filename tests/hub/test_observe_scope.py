"""observe reaches only the caller's descendants (children, grandchildren...), whatever
its tier: never its parent, a peer or a peer's subtree. Refusals are hub.denied events."""

from __future__ import annotations

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.hub.unix_transport import unix_client

from .conftest import structured


async def denied_events(store, actor):
    return [e for e in await store.events_after(0, limit=10000, kinds=["hub.denied"]) if e.actor == actor]


async def refused(c, agent):
    with pytest.raises(MCPError) as err:
        await c.call_tool("observe", {"agent": agent})
    return str(err.value)


async def test_a_tier_one_agent_observes_its_child_but_not_its_parent_or_peers(hub, store):
    await store.send_message("operator", "lead", "SECRET-FOR-LEAD")
    await store.send_message("operator", "reviewer", "SECRET-FOR-REVIEWER")
    await store.send_message("operator", "narrow", "SECRET-FOR-NARROW")
    await store.send_message("worker", "deep", "work for deep")
    path = await hub.open_door("worker")
    async with Client(unix_client(path)) as c:
        texts = [await refused(c, name) for name in ("lead", "reviewer", "narrow", "worker")]
        seen = structured(await c.call_tool("observe", {"agent": "deep"}))
    assert all("SECRET" not in t for t in texts)
    assert "you may observe only your descendants: deep" in texts[0]
    assert seen["agent"]["name"] == "deep" and [m["body"] for m in seen["messages"]] == ["work for deep"]
    denied = await denied_events(store, "worker")
    assert [(e.subject, e.detail["args"]["agent"]) for e in denied] == [
        ("observe", "lead"), ("observe", "reviewer"), ("observe", "narrow"), ("observe", "worker")]
    assert all("not below worker" in e.detail["reason"] for e in denied)
    # nothing was marked read by the refused looks (nor by the allowed one)
    for name in ("lead", "reviewer", "narrow", "deep"):
        assert [m.read_at for m in await store.inbox(name)] == [None]


async def test_a_top_level_agent_observes_its_whole_subtree_but_not_a_peer(hub, store):
    path = await hub.open_door("lead")
    async with Client(unix_client(path)) as c:
        for name in ("worker", "narrow", "deep"):  # children and a grandchild
            assert structured(await c.call_tool("observe", {"agent": name}))["agent"]["name"] == name
        text = await refused(c, "reviewer")
    assert "deep, narrow, worker" in text
    [e] = await denied_events(store, "lead")
    assert (e.subject, e.detail["args"]["agent"]) == ("observe", "reviewer")
    assert e.detail["reason"] in text


async def test_an_agent_with_no_children_may_observe_nobody(hub, store):
    path = await hub.open_door("reviewer")
    async with Client(unix_client(path)) as c:
        text = await refused(c, "lead")
    assert "nobody (you have no children)" in text
    assert len(await denied_events(store, "reviewer")) == 1
