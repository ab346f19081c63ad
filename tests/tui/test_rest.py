"""The console at rest does no work: it reads the store only after a commit, hidden views
do not query or repaint, and the idle-prompt check is one timer for the moment it is due.
Counts of work done, never durations."""

from __future__ import annotations

import time

from textual.app import App

from crowdtui.tui.attention import AttentionWatch
from crowdtui.tui.pacing import Pacer, StoreSignal, stats_due
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.inbox_view import InboxView
from tests.tui.conftest import add_agent, store_app, wait_for


async def test_store_signal_sees_each_commit_and_nothing_else(workspace, store):
    add_agent(workspace, "alice")
    signal = StoreSignal(store.path, force_every=1e9)
    assert signal.changed(0.0)  # the first look always reads
    assert not signal.changed(1.0)
    await store.events_after(0)  # reading changes nothing
    assert not signal.changed(2.0)
    await store.send_message("operator", "operator", "note to self")
    assert signal.changed(3.0)
    assert not signal.changed(4.0)
    assert signal.hits == 2
    # the safety net: asked long enough after the last read, it says yes anyway
    assert StoreSignal(store.path, force_every=5.0).changed(0.0)
    forced = StoreSignal(store.path, force_every=5.0)
    forced.changed(0.0)
    assert not forced.changed(4.9) and forced.changed(5.0)


async def test_a_quiet_store_is_not_queried(workspace, store):
    app = store_app(workspace, poll_interval=0.02)
    calls = 0
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._store_signal is not None and app._store_signal.hits >= 1)
        real = app.store.events_after

        async def counting(*args, **kwargs):
            nonlocal calls
            calls += 1
            return await real(*args, **kwargs)

        app._store_signal.force_every = 1e9
        app.store.events_after = counting
        hits = app._store_signal.hits
        for _ in range(20):  # twenty poll ticks or more
            await pilot.pause(0.02)
        assert calls == 0 and app._store_signal.hits == hits
        await store.send_message("operator", "operator", "wake up")
        await wait_for(pilot, lambda: calls >= 1, what="the commit read")
        activity = app.query_one(ActivityView)
        await wait_for(pilot, lambda: any(e.kind.startswith("message") for e in activity.events),
                       what="the event in Activity")


async def test_hidden_inbox_does_not_query_or_repaint_until_shown(workspace, store):
    add_agent(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("alice"), what="alice in the list")
        agents.select("alice")
        await pilot.pause()
        assert app.active_view == "terminal"
        inbox = app.query_one(InboxView)
        shows = 0
        real_show = inbox.show

        def counting_show(*args, **kwargs):
            nonlocal shows
            shows += 1
            return real_show(*args, **kwargs)

        inbox.show = counting_show
        seen = app._last_event_id
        await store.send_message("operator", "alice", "for alice")
        await wait_for(pilot, lambda: app._last_event_id > seen, what="the message event read")
        await pilot.pause(0.1)
        assert shows == 0  # the inbox is hidden: nothing queried, nothing drawn
        app.action_view("inbox")
        await wait_for(pilot, lambda: shows >= 1, what="the inbox refreshed when shown")
        await wait_for(pilot, lambda: any(m.body == "for alice" for m in inbox.messages),
                       what="the message in the inbox")


def test_attention_due_only_when_a_prompt_can_turn_idle():
    watch = AttentionWatch(idle_after=20.0, now=0.0)
    assert watch.due() is None  # nothing on the last line
    watch.feed(b"working...\r\n", 5.0)
    assert watch.due() is None  # a finished line is not a prompt
    watch.feed(b"Continue? [y/N] ", 7.0)
    assert watch.due() == 27.0
    assert watch.reason(26.9) is None and watch.reason(27.0) == "prompt waiting"
    watch.feed(b"\x07", 8.0)
    assert watch.due() is None  # a bell is pending: already flagged


def test_stats_are_due_often_while_agents_print_and_rarely_at_rest():
    assert stats_due(100.0, last_stats=90.0, last_output=95.0, busy_every=6, idle_every=30) == 96.0
    assert stats_due(100.0, last_stats=90.0, last_output=80.0, busy_every=6, idle_every=30) == 120.0
    # the operator typed a second ago: the busy sample waits until two seconds after the key
    assert stats_due(100.0, 90.0, 95.0, 6, 30, typed_at=99.0, grace=2.0) == 101.0
    # but not beyond the idle interval, however long the typing goes on
    assert stats_due(125.0, 90.0, 95.0, 6, 30, typed_at=124.9, grace=2.0) == 120.0
    assert stats_due(100.0, 90.0, 95.0, 6, 30, typed_at=90.0, grace=2.0) == 96.0  # long ago


async def test_pacer_keeps_one_timer_for_the_earliest_moment():
    fired: list[float] = []
    async with App().run_test() as pilot:
        app = pilot.app
        pacer = Pacer(app.set_timer, lambda: fired.append(time.monotonic()), time.monotonic)
        now = time.monotonic()
        pacer.schedule(now + 3600)
        pacer.schedule(now + 7200)  # later than the pending one: ignored
        assert pacer.due == now + 3600
        pacer.schedule(now + 0.05)  # earlier: replaces it
        assert pacer.due == now + 0.05
        await wait_for(pilot, lambda: fired, what="the wake-up")
        await pilot.pause(0.1)
        assert len(fired) == 1 and pacer.due is None  # the hour-long one was dropped


async def test_agent_list_repaints_only_the_cells_of_rows_that_changed():
    from crowdtui.tui.crew import AgentRow

    class ListApp(App):
        def compose(self):
            yield AgentList(id="agents")

    rows = [AgentRow(f"a{i}", state="running", cpu=1.0, memory=1 << 20) for i in range(5)]
    async with ListApp().run_test(size=(100, 20)) as pilot:
        table = pilot.app.query_one(AgentList)
        table.set_rows(rows)
        await pilot.pause()
        table.move_cursor(row=3)
        keys = list(table.rows)
        updates = 0
        real = table.update_cell

        def counting(*args, **kwargs):
            nonlocal updates
            updates += 1
            return real(*args, **kwargs)

        table.update_cell = counting
        table.set_rows(rows[:2] + [AgentRow("a2", state="running", cpu=55.0, memory=1 << 20)] + rows[3:])
        await pilot.pause()
        assert list(table.rows) == keys  # the same rows: not cleared and rebuilt
        assert updates == 6  # the six cells of the one row that changed
        assert "55" in table.get_cell("a2", "cpu").plain
        assert table.cursor_row == 3 and table.selected == "a3"
        table.set_rows(list(reversed(rows)))  # another order: rebuilt
        await pilot.pause()
        assert [k.value for k in table.rows] == [r.name for r in reversed(rows)]
