"""Route authority (issue 18 item 4) on a real store file: owners, the operator's routes first,
agents' wide matches pending until the operator approves, only operator routes let a chat in,
every refusal an event; and migration 040 over a table written before it."""

from __future__ import annotations

import shutil

import pytest
from qms.errors import InvalidInput, PermissionDenied

from crowdtui.dispatch import inbound as inb
from crowdtui.dispatch import onboarding
from crowdtui.dispatch.matching import Incoming, Route, decide, literal, parse_expression, wide_reason
from crowdtui.dispatch.routes import add_route, decide_pending, list_routes, move_route, remove_route


@pytest.mark.parametrize("pattern, value", [
    ("local", "local"), ("local:ann", "local:ann"), ("local:[*]x", "local:*x"), ("[[]a]", "[a]"),
    ("[]]", "]"), ("*", None), ("", None), ("local:*", None), ("a?", None), ("[ab]", None), ("[!a]", None),
    ("a[", None),
])
def test_literal_is_the_one_value_a_glob_matches(pattern, value):
    assert literal(pattern) == value


@pytest.mark.parametrize("match, wide", [
    ("platform=local chat=local:ann", False),
    ("platform=telegram room=-100123", False),
    ("platform=local chat=local:ann sender=* verb=", False),
    ("chat=* platform=local chat=local:ann", False),  # ANDed: one pinned chat is enough
    ("*", True),
    ("platform=local", True),
    ("platform=local chat=local:*", True),
    ("platform=loc* chat=local:ann", True),
    ("chat=local:ann", True),  # no platform
    ("platform=local sender=ann", True),  # one sender across rooms
    ("platform=local room=", True),  # "absent" pins nothing
    ("platform=telegram room=-100[12]", True),
])
def test_wide_matches_are_defined_precisely(match, wide):
    assert (wide_reason(parse_expression(match)) is not None) is wide


def test_only_operator_routes_let_a_message_in_and_agents_routes_pass_on_their_share():
    op = Route(1, "platform=local chat=local:ann", "lead", 1)
    mine = Route(2, "platform=local chat=local:ann", "helper", 2, owner="lead")
    grab = Route(3, "platform=local chat=local:bob", "qa", 3, owner="qa")
    other = Route(4, "platform=local chat=local:ann", "qa", 4, owner="qa")
    routes = [op, mine, grab, other]
    ann = decide(Incoming("local:ann", "hi", platform="local", sender="ann"), routes)
    assert (ann.kind, ann.agent, ann.route_id) == ("deliver", "helper", 2)  # lead passed its share on
    bob = decide(Incoming("local:bob", "hi", platform="local", sender="bob"), routes)
    assert bob.kind == "hold" and "operator" in bob.reason  # an agent's route lets nobody in
    pending = Route(2, "platform=local chat=local:ann", "helper", 2, owner="lead", state="pending")
    assert decide(Incoming("local:ann", "hi", platform="local"), [op, pending]).agent == "lead"
    loop = [op, Route(5, "*", "helper", 2, owner="lead"), Route(6, "*", "lead", 3, owner="helper")]
    assert decide(Incoming("local:ann", "hi", platform="local"), loop).agent == "helper"  # each agent once


async def test_agent_routes_stay_below_the_operators_and_only_owners_change_them(store, clock):
    a = await add_route(store, "platform=local", "qa", actor="operator", now=clock.now())
    b = await add_route(store, "platform=local chat=local:ann", "helper", actor="lead", position=1,
                        now=clock.now())
    assert (b.position, b.owner, b.state) == (2, "lead", "active")
    c = await add_route(store, "chat=local:x", "qa", actor="operator", now=clock.now())  # above lead's
    assert [(r.id, r.position) for r in await list_routes(store)] == [(a.id, 1), (c.id, 2), (b.id, 3)]
    assert (await move_route(store, b.id, 1, actor="lead")).position == 3  # never above an operator route
    with pytest.raises(PermissionDenied, match="belongs to the operator"):
        await move_route(store, a.id, 3, actor="lead")
    with pytest.raises(PermissionDenied, match="belongs to the operator"):
        await remove_route(store, a.id, actor="lead")
    with pytest.raises(PermissionDenied, match="belongs to lead"):
        await remove_route(store, b.id, actor="qa")
    assert [r.id for r in await list_routes(store)] == [a.id, c.id, b.id]  # unchanged
    refused = await store.events_after(0, kinds=["route.refused"])
    assert [(e.actor, e.subject, e.detail["action"]) for e in refused] == [
        ("lead", str(a.id), "move"), ("lead", str(a.id), "remove"), ("qa", str(b.id), "remove")]
    assert all("only routes you added" in e.detail["reason"] for e in refused)
    # the operator may move and remove anything, but keeps its routes above the agents'
    assert (await move_route(store, a.id, 3, actor="operator")).position == 2
    assert (await move_route(store, b.id, 1, actor="operator")).position == 3
    await remove_route(store, b.id, actor="operator")
    assert [(r.id, r.position) for r in await list_routes(store)] == [(c.id, 1), (a.id, 2)]


async def test_wide_agent_routes_wait_for_the_operator(store, clock):
    r = await add_route(store, "*", "lead", actor="lead", position=1, now=clock.now())
    assert r.state == "pending"
    [ev] = await store.events_after(0, kinds=["route.pending"])
    assert (ev.actor, ev.subject, ev.detail["owner"], ev.detail["asked"]) == ("lead", str(r.id), "lead", 1)
    assert "platform" in ev.detail["wide"]
    with pytest.raises(PermissionDenied, match="only the operator may approve"):
        await decide_pending(store, r.id, True, actor="lead")
    assert (await list_routes(store))[0].state == "pending"
    ok = await decide_pending(store, r.id, True, actor="operator")
    assert ok.state == "active" and (await list_routes(store))[0].state == "active"
    with pytest.raises(InvalidInput, match="not pending"):
        await decide_pending(store, r.id, False, actor="operator")
    s = await add_route(store, "sender=ann", "lead", actor="lead", now=clock.now())
    await decide_pending(store, s.id, False, actor="operator")
    assert [x.id for x in await list_routes(store)] == [r.id]
    kinds = [(e.kind, e.actor) for e in await store.events_after(
        0, kinds=["route.approved", "route.rejected", "route.refused"])]
    assert kinds == [("route.refused", "lead"), ("route.approved", "operator"), ("route.rejected", "operator")]


async def test_a_held_chat_stays_held_whatever_agents_route_and_only_the_operator_lets_it_in(
        dispatch, store, channel, clock):
    ch, _ = await dispatch.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])
    await add_route(store, "platform=local chat=local:ann", "qa", actor="operator", now=clock.now())
    await add_route(store, "platform=local chat=local:bob", "lead", actor="lead", position=1, now=clock.now())
    wide = await add_route(store, "*", "lead", actor="lead", position=1, now=clock.now())
    await decide_pending(store, wide.id, True, actor="operator")  # even approved, it lets nobody in
    await dispatch.receive(ch, inb.parse_inbound({"id": "1", "chat": "local:bob", "text": "let me in",
                                                "sender": "bob"}))
    await dispatch.receive(ch, inb.parse_inbound({"id": "2", "chat": "local:ann", "text": "hello", "sender": "ann"}))
    await dispatch.route_pending()
    assert (await inb.get_inbound(store, "local", "1")).status == "held"
    assert [m.body.splitlines()[1] for m in await store.inbox("qa")] == ["hello"]
    assert await store.inbox("lead") == []
    with pytest.raises(PermissionDenied, match="only the operator may approve a held chat"):
        await onboarding.approve_chat(store, "local:bob", "lead", actor="lead", now=clock.now())
    with pytest.raises(PermissionDenied, match="only the operator may deny"):
        await onboarding.deny_chat(store, "local:bob", actor="lead")
    assert (await inb.get_inbound(store, "local", "1")).status == "held"
    assert [e.detail["action"] for e in await store.events_after(0, kinds=["route.refused"])] == [
        "onboard.approve", "onboard.deny"]
    await onboarding.approve_chat(store, "local:bob", "lead", actor="operator", now=clock.now())
    await dispatch.route_pending()
    assert [m.body.splitlines()[1] for m in await store.inbox("lead")] == ["let me in"]


async def test_migration_040_gives_existing_routes_their_adder_as_owner_operator_first(workspace, tmp_path):
    import aiosqlite

    from qms.db import MIGRATIONS_DIR, migrate

    before = tmp_path / "migrations"
    before.mkdir()
    for f in MIGRATIONS_DIR.glob("*.sql"):
        if int(f.name[:3]) < 40:
            shutil.copy(f, before / f.name)
    db = await aiosqlite.connect(tmp_path / "old.db")
    db.row_factory = aiosqlite.Row
    try:
        await migrate(db, before)
        rows = [(1, "*", "lead", "lead"), (2, "platform=local", "qa", "operator"),
                (3, "chat=local:a", "helper", "lead"), (4, "chat=local:b", "qa", "operator")]
        await db.executemany("INSERT INTO engine_routes (position, match, agent, created_by, created_at) "
                             "VALUES (?, ?, ?, ?, 0)", rows)
        await db.commit()
        shutil.copy(MIGRATIONS_DIR / "040_route_owner.sql", before)
        assert 40 in await migrate(db, before)
        got = await db.execute_fetchall("SELECT position, match, owner, state FROM engine_routes ORDER BY position")
        assert [tuple(r) for r in got] == [(1, "platform=local", "operator", "active"),
                                           (2, "chat=local:b", "operator", "active"),
                                           (3, "*", "lead", "active"),
                                           (4, "chat=local:a", "lead", "active")]
    finally:
        await db.close()
