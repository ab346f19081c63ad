"""Dispatch's tables (``engine_*`` in the schema) as the store keeps them (qms.routes,
qms.scheduled_tasks, qms.inbound, qms.outbound, qms.channels), on a real SQLite file: typed
rows out, each change with its event in the same transaction, and a refused or failing
change leaves nothing behind."""

from __future__ import annotations

import pytest

from qms import channels, inbound, outbound, routes
from qms import scheduled_tasks as sched
from qms.errors import InvalidInput, NotFound, PermissionDenied
from qms.inbound import Arrival
from qms.quotas import QuotaExceeded, Quotas


async def kinds(store, after: int = 0) -> list[tuple[str, str, str]]:
    return [(e.actor, e.kind, e.subject) for e in await store.events_after(after, limit=10_000)]


# --- routes ---------------------------------------------------------------------------

async def test_agents_routes_sit_below_the_operators_and_only_owners_change_them(store, snapshot):
    op = await routes.add_route(store, "chat=a:*", "alice", actor="operator", now=1.0)
    mine = await routes.add_route(store, "chat=b:*", "bob", actor="bob", position=1, now=2.0)
    op2 = await routes.add_route(store, "chat=c:*", "carol", actor="operator", now=3.0)
    assert [(r.id, r.position, r.owner, r.state) for r in await routes.list_routes(store)] == [
        (op.id, 1, "operator", "active"), (op2.id, 2, "operator", "active"), (mine.id, 3, "bob", "active")]
    assert mine.position == 2  # asked for 1, landed below the one operator route there was
    mark = await store.last_event_id()
    before = snapshot(without_refusals=True)
    with pytest.raises(PermissionDenied, match="belongs to the operator"):
        await routes.move_route(store, op.id, 3, actor="bob")
    with pytest.raises(PermissionDenied, match="belongs to bob"):
        await routes.remove_route(store, mine.id, actor="carol")
    assert [(a, k) for a, k, _ in await kinds(store, mark)] == [("bob", "route.refused"), ("carol", "route.refused")]
    after = snapshot(without_refusals=True)
    after["events"], before["events"] = after["events"][:len(before["events"])], before["events"]
    assert after == before  # nothing but the two refusals
    removed = await routes.remove_route(store, op.id, actor="operator")
    assert removed.id == op.id
    assert [(r.id, r.position) for r in await routes.list_routes(store)] == [(op2.id, 1), (mine.id, 2)]


async def test_a_wide_route_waits_for_the_operator(store):
    r = await routes.add_route(store, "*", "bob", actor="bob", now=1.0, wide="matches every chat")
    assert r.state == "pending"
    with pytest.raises(PermissionDenied, match="only the operator may approve"):
        await routes.decide_pending(store, r.id, True, actor="bob")
    assert (await routes.decide_pending(store, r.id, True, actor="operator")).state == "active"
    with pytest.raises(InvalidInput, match="is not pending"):
        await routes.decide_pending(store, r.id, False, actor="operator")
    assert [k for _, k, _ in await kinds(store) if k.startswith("route.")] == [
        "route.pending", "route.refused", "route.approved"]
    with pytest.raises(NotFound):
        await routes.move_route(store, 2 ** 63, 1, actor="operator")


# --- scheduled tasks ------------------------------------------------------------------

async def test_a_task_is_added_once_and_an_agents_task_meets_its_quota(store, snapshot):
    t = await sched.add_task(store, name="daily", agent="bob", schedule="every:1h", text="report", actor="operator",
                             next_due=100.0, shortest_gap=3600.0, now=1.0)
    assert (t.by_agent, t.min_gap, t.state) == (False, 0.0, "active")
    before = snapshot()
    with pytest.raises(InvalidInput, match="a task named 'daily' exists"):
        await sched.add_task(store, name="daily", agent="bob", schedule="every:1h", text="x", actor="operator",
                             next_due=1.0, shortest_gap=3600.0, now=1.0)
    assert snapshot() == before  # neither a row nor an event
    store.quotas = Quotas(task_min_interval=60.0)
    with pytest.raises(QuotaExceeded, match="task_min_interval"):
        await sched.add_task(store, name="fast", agent="bob", schedule="every:1s", text="x", actor="bob",
                             next_due=1.0, shortest_gap=1.0, now=1.0)
    assert [(a, k, s) for a, k, s in await kinds(store)][-1] == ("bob", "quota.refused", "task_min_interval")
    own = await sched.add_task(store, name="own", agent="bob", schedule="every:2m", text="x", actor="bob",
                               next_due=50.0, shortest_gap=120.0, now=1.0)
    assert (own.by_agent, own.min_gap) == (True, 60.0)
    assert [x.name for x in await sched.list_tasks(store)] == ["daily", "own"]


async def test_a_run_is_claimed_once_finished_once_and_orphans_go(store):
    await store.set_agent_state("bob", "running")
    t = await sched.add_task(store, name="t", agent="alice", schedule="every:2m", text="x", actor="bob",
                             next_due=10.0, shortest_gap=120.0, now=1.0)
    assert [x.name for x in await sched.due_tasks(store, 10.0)] == ["t"]
    run_id = await sched.claim_run(store, t, next_due=130.0, missed=0, now=10.0)
    assert run_id is not None
    assert await sched.claim_run(store, t, next_due=130.0, missed=0, now=10.0) is None  # already moved on
    assert await sched.recover_runs(store) == 1  # a crash before sending: interrupted
    await sched.finish_run(store, t, run_id, outcome="sent", detail="ok", missed=0, next_due=130.0)
    [run] = await sched.runs_of(store, t.id)
    assert (run.outcome, run.detail) == ("sent", "ok")
    await store.set_agent_state("bob", "stopped")
    assert await sched.next_due_at(store) is None  # an agent's task waits while it does not run
    await store.remove_agent("bob", actor="operator")
    assert await sched.remove_orphans(store) == ["t"]
    assert await sched.list_tasks(store) == []
    assert [k for _, k, s in await kinds(store) if s == "t"] == ["task.added", "task.ran", "task.removed"]


# --- inbound --------------------------------------------------------------------------

def arrival(msg_id: str, chat: str = "local:ann", text: str = "hi") -> Arrival:
    return Arrival(channel="local", platform="local", msg_id=msg_id, chat=chat, text=text, sender="ann")


async def test_an_arrival_is_stored_once_and_held_chats_are_released_in_one_transaction(store, snapshot):
    [(seq, new)] = await inbound.store_arrivals(store, [arrival("1")], now=1.0)
    assert new
    [(again, new_again), (seq2, new2)] = await inbound.store_arrivals(store, [arrival("1"), arrival("2")], now=2.0)
    assert (again, new_again, new2) == (seq, False, True) and seq2 > seq
    assert [r.msg_id for r in await inbound.new_inbound(store)] == ["1", "2"]

    def hold(conn):
        for s in (seq, seq2):
            inbound.mark_tx(conn, s, "held", None, "unknown sender")

    await store.write_sync(hold)
    [h] = await inbound.list_holds(store)
    assert (h.chat, h.count, h.senders) == ("local:ann", 2, ("ann",))
    before = snapshot()
    with pytest.raises(NotFound, match="no agent named 'ghost'"):
        await inbound.approve_held(store, "local:ann", "ghost", match="chat=local:ann", actor="operator", now=3.0)
    assert snapshot() == before  # no route was added for a refused approval
    route_id, released = await inbound.approve_held(store, "local:ann", "bob", match="chat=local:ann",
                                                    actor="operator", now=3.0)
    assert released == 2
    assert [(r.id, r.position, r.agent) for r in await routes.list_routes(store)] == [(route_id, 1, "bob")]
    assert [r.status for r in await inbound.list_inbound(store, chat="local:ann")] == ["new", "new"]
    with pytest.raises(NotFound, match="no messages are held"):
        await inbound.deny_held(store, "local:ann", actor="operator")
    assert [k for _, k, _ in await kinds(store)][-2:] == ["route.added", "onboard.approved"]


async def test_a_batch_of_arrivals_keeps_its_order_and_stores_a_repeated_id_once(store):
    first = await inbound.store_arrivals(store, [arrival("a")], now=1.0)
    batch = [arrival(str(i)) for i in range(600)]  # past one INSERT's 250 rows and one look's 500 ids
    batch[10:10] = [arrival("a", text="again"), arrival("5", text="twice in one batch")]
    results = await inbound.store_arrivals(store, batch, now=2.0)
    assert results[10] == (first[0][0], False)  # stored before
    assert results[5][1] is True and results[11] == (results[5][0], False)  # the first copy wins
    fresh = [seq for seq, new in results if new]
    assert len(fresh) == 600 and fresh == sorted(fresh)  # arrival order
    rows = await inbound.list_inbound(store)
    assert [r.msg_id for r in rows] == ["a"] + [str(i) for i in range(600)]
    assert (await inbound.get_inbound(store, "local", "5")).text == "hi"


async def test_many_deliveries_have_their_own_ids_and_events(store):
    from qms.messages import deliver_many_tx

    await store.upsert_agent("bob", path="bob", tier=0)
    items = [("local", "bob", f"body {i}", f"local:c{i % 3}") for i in range(700)]
    ids = await store.write_sync(lambda conn: deliver_many_tx(conn, store, items))
    assert len(set(ids)) == 700 and ids == sorted(ids)
    inbox = {m.id: m for m in await store.inbox("bob", limit=1000)}
    assert [(inbox[i].body, inbox[i].thread) for i in ids] == [(b, t) for _, _, b, t in items]
    sent = await store.events_after(0, kinds=["message.sent"], limit=1000)
    assert [(e.detail["id"], e.detail["preview"], e.detail["thread"]) for e in sent] == \
        [(i, b, t) for i, (_, _, b, t) in zip(ids, items)]
    with pytest.raises(NotFound, match="no agent named 'ghost'"):
        await store.write_sync(lambda conn: deliver_many_tx(conn, store, [("local", "bob", "x", None),
                                                                          ("local", "ghost", "y", None)]))
    assert len(await store.inbox("bob", limit=1000)) == 700  # nothing of a refused batch


async def test_sticky_agents_and_reached_agents_are_kept_per_chat(store):
    def tx(conn):
        inbound.set_sticky_tx(conn, "c1", "bob", 1.0)
        inbound.set_sticky_tx(conn, "c1", "carol", 2.0)
        inbound.set_sticky_tx(conn, "c2", "dave", 2.0)
        inbound.clear_sticky_tx(conn, "c2")
        inbound.reached_many_tx(conn, [("c1", "bob", 1.0)])
        inbound.reached_many_tx(conn, [("c1", "bob", 3.0)])

    await store.write_sync(tx)
    assert await inbound.stickies(store, [f"c{i}" for i in range(1200)]) == {"c1": "carol"}  # chunked IN lists
    assert await inbound.chat_agents(store, "c1") == {"bob"}


# --- outbound and channels ------------------------------------------------------------

async def test_outbound_backs_off_then_gives_up_with_an_event(store):
    oid = await outbound.enqueue(store, chat="local:ann", text="hello", agent="bob", now=0.0)
    later = await outbound.enqueue(store, chat="local:ann", text="again", agent="bob", now=0.0)
    assert [o.id for o in await outbound.due(store, 0.0)] == [oid, later]
    assert await outbound.mark_failed(store, oid, "down", 0.0, max_attempts=2) == "pending"
    assert [o.id for o in await outbound.due(store, 0.1)] == []  # the later one waits behind it
    assert await outbound.next_due_at(store) == 0.0
    assert await outbound.mark_failed(store, oid, "down", 1.0, max_attempts=2) == "failed"
    await outbound.mark_sent(store, later, "local", 1.0)
    typing = await outbound.enqueue(store, chat="local:ann", text="", agent="bob", now=1.0, kind="typing")
    assert await outbound.mark_failed(store, typing, "down", 1.0) == "failed"  # a typing notice: one try
    assert [(o.state, o.attempts) for o in await outbound.list_outbound(store, chat="local:ann")] == [
        ("failed", 2), ("sent", 1), ("failed", 1)]
    assert [k for _, k, _ in await kinds(store) if k.startswith("chat.")] == [
        "chat.reply", "chat.reply", "chat.undelivered", "chat.undelivered"]


async def test_channels_own_prefixes_alone_and_go_down_after_failed_polls(store, snapshot):
    ch, token = await channels.register_channel(store, name="local", platform="local", callback_url="http://x",
                                                prefixes=["local:"], now=1.0)
    assert (await channels.channel_for_token(store, token)).name == "local"
    assert await channels.channel_for_token(store, token + "x") is None
    before = snapshot()
    with pytest.raises(InvalidInput, match="overlaps 'local:'"):
        await channels.register_channel(store, name="other", platform="x", callback_url="http://y",
                                        prefixes=["local:a"], now=2.0)
    with pytest.raises(InvalidInput, match="taken by an agent"):
        await channels.register_channel(store, name="bob", platform="x", callback_url="http://y",
                                        prefixes=["b:"], now=2.0)
    assert snapshot() == before
    assert token not in repr(snapshot())  # only its hash is kept
    for i in range(3):
        ch = await channels.record_health(store, "local", False, now=2.0 + i, max_failures=3)
    assert (ch.state, ch.failures) == ("down", 3)
    assert await channels.channel_for_chat(store, "local:ann") is None
    assert not await channels.deregister_channel(store, "local", reason="again")  # already down
    assert [k for _, k, _ in await kinds(store)][-2:] == ["channel.registered", "channel.deregistered"]
