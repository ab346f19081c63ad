"""The scheduler with a controllable clock: cron, interval, one-shot; catch up once."""

from __future__ import annotations

import pytest
from qms.errors import InvalidInput, NotFound

from crowdtui.dispatch import tasks

T0 = 1795320000.0  # 2026-11-22T04:00:00Z, the manual clock's start (conftest)


async def bodies(store, agent):
    return [(m.body, m.thread, m.sender) for m in await store.inbox(agent)]


async def test_interval_fires_when_due_and_records_runs(dispatch, store, clock):
    await tasks.add_task(store, name="standup", agent="lead", schedule="every:10m",
                         text="post the standup", actor="operator", now=clock.now())
    assert await dispatch.run_due_tasks() == []
    clock.advance(599)
    assert await dispatch.run_due_tasks() == []
    clock.advance(1)
    runs = await dispatch.run_due_tasks()
    assert [(r.outcome, r.missed) for r in runs] == [("sent", 0)]
    assert await bodies(store, "lead") == [("post the standup", "task:standup", "operator")]
    assert (await tasks.get_task(store, "standup")).next_due == T0 + 1200
    assert [r.outcome for r in await tasks.runs_of(store, "standup")] == ["sent"]


async def test_a_fired_task_wakes_its_agent_by_launch_policy(dispatch, store, clock):
    woken = []

    async def delivered(name):
        woken.append(name)

    dispatch.router.delivered = delivered
    await tasks.add_task(store, name="t", agent="qa", schedule="every:1m", text="x", actor="operator",
                         now=clock.now())
    clock.advance(60)
    await dispatch.run_due_tasks()
    assert woken == ["qa"]


async def test_cron_fires_on_its_minutes(dispatch, store, clock):
    await tasks.add_task(store, name="quarter", agent="qa", schedule="cron:*/15 * * * *",
                         text="check", actor="operator", now=clock.now())
    fired = 0
    for _ in range(60):  # one simulated hour, a minute at a time
        clock.advance(60)
        fired += len(await dispatch.run_due_tasks())
    assert fired == 4
    assert len(await store.inbox("qa")) == 4


async def test_one_shot_fires_once_then_is_done(dispatch, store, clock):
    await tasks.add_task(store, name="remind", agent="lead", schedule="at:2026-11-22T04:30:00Z",
                         text="renew the cert", actor="operator", now=clock.now())
    clock.advance(1800)
    assert len(await dispatch.run_due_tasks()) == 1
    clock.advance(86400)
    assert await dispatch.run_due_tasks() == []
    t = await tasks.get_task(store, "remind")
    assert (t.state, t.next_due) == ("done", None)
    with pytest.raises(InvalidInput, match="done"):
        await tasks.set_paused(store, "remind", False, actor="operator", now=clock.now())


async def test_downtime_catches_up_once_not_many_times(dispatch, store, clock):
    await tasks.add_task(store, name="tick", agent="lead", schedule="every:1m", text="tick",
                         actor="operator", now=clock.now())
    await tasks.add_task(store, name="hourly", agent="qa", schedule="cron:0 * * * *", text="hour",
                         actor="operator", now=clock.now())
    clock.advance(5 * 3600 + 30)  # dispatch was down for five hours
    runs = await dispatch.run_due_tasks()
    assert sorted((r.missed, r.outcome) for r in runs) == [(4, "sent"), (299, "sent")]
    assert len(await store.inbox("lead")) == 1 and len(await store.inbox("qa")) == 1
    assert await dispatch.run_due_tasks() == []
    assert (await tasks.get_task(store, "tick")).next_due == T0 + 5 * 3600 + 60
    assert (await tasks.get_task(store, "hourly")).next_due == T0 + 6 * 3600


async def test_pause_resume_and_remove(dispatch, store, clock):
    await tasks.add_task(store, name="t", agent="lead", schedule="every:1m", text="x",
                         actor="operator", now=clock.now())
    await tasks.set_paused(store, "t", True, actor="operator", now=clock.now())
    clock.advance(600)
    assert await dispatch.run_due_tasks() == []
    t = await tasks.set_paused(store, "t", False, actor="operator", now=clock.now())
    assert t.next_due == clock.now() + 60  # no backlog from the paused time
    await tasks.remove_task(store, "t", actor="operator")
    with pytest.raises(NotFound, match="task ls"):
        await tasks.get_task(store, "t")


async def test_a_failing_run_is_recorded_and_the_schedule_goes_on(dispatch, store, clock):
    await tasks.add_task(store, name="orphan", agent="ghost", schedule="every:1m", text="x",
                         actor="operator", now=clock.now())
    clock.advance(60)
    runs = await dispatch.run_due_tasks()
    assert runs[0].outcome == "failed" and "ghost" in runs[0].detail
    assert (await tasks.get_task(store, "orphan")).next_due == T0 + 120


async def test_bad_tasks_are_refused(store, clock):
    for kw, says in [
        (dict(name="a", agent="lead", schedule="every:soon", text="x"), "not understood"),
        (dict(name="Bad Name", agent="lead", schedule="every:1m", text="x"), "invalid name"),
        (dict(name="a", agent="lead", schedule="every:1m", text="  "), "empty"),
    ]:
        with pytest.raises(InvalidInput, match=says):
            await tasks.add_task(store, actor="operator", now=clock.now(), **kw)
    await tasks.add_task(store, name="a", agent="lead", schedule="every:1m", text="x",
                         actor="operator", now=clock.now())
    with pytest.raises(InvalidInput, match="exists"):
        await tasks.add_task(store, name="a", agent="lead", schedule="every:1m", text="y",
                             actor="operator", now=clock.now())
    assert [t.text for t in await tasks.list_tasks(store)] == ["x"]


async def test_a_run_cut_by_a_crash_is_marked_interrupted_not_repeated(dispatch, store, clock):
    await tasks.add_task(store, name="t", agent="lead", schedule="every:1m", text="x",
                         actor="operator", now=clock.now())
    clock.advance(60)

    async def crash(task):
        raise SystemExit  # stands for the process dying between claim and send

    with pytest.raises(SystemExit):
        await tasks.fire_due(store, clock.now(), crash)
    assert await tasks.recover_runs(store) == 1
    assert [r.outcome for r in await tasks.runs_of(store, "t")] == ["interrupted"]
    assert await dispatch.run_due_tasks() == []  # the claimed due time is not fired again
