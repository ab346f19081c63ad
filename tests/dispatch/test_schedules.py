"""Schedule parsing and the catch-up-once rule (pure part of the scheduler)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from crowdtui.dispatch.schedules import BadSchedule, parse_schedule

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc).timestamp()


def test_cron_next_and_catch_up_folds_missed_runs():
    s = parse_schedule("cron:*/5 * * * *")
    assert s.first_due(T0) == T0 + 300
    # dispatch down from 04:05 until 04:21: one run now, three folded, next at 04:25
    nxt, missed = s.after_run(T0 + 300, T0 + 21 * 60)
    assert (nxt, missed) == (T0 + 25 * 60, 3)
    assert s.text == "cron:*/5 * * * *"


def test_interval_keeps_its_phase_and_folds_missed_runs():
    s = parse_schedule("every:10m")
    assert s.text == "every:10m"
    assert s.first_due(T0) == T0 + 600
    assert s.after_run(T0 + 600, T0 + 600) == (T0 + 1200, 0)
    assert s.after_run(T0 + 600, T0 + 3000) == (T0 + 3600, 4)


def test_one_shot_runs_once():
    s = parse_schedule("at:2026-11-22T04:30:00Z")
    assert s.first_due(T0) == T0 + 1800
    assert s.after_run(T0 + 1800, T0 + 99999) == (None, 0)
    assert parse_schedule("at:2026-11-22T04:30:00").first_due(0) == T0 + 1800  # no zone: UTC


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "empty schedule"),
        ("*/5 * * * *", "must start with cron:, every: or at:"),
        ("cron:61 * * * *", "not a cron expression"),
        ("cron:hello", "not a cron expression"),
        ("every:soon", "not understood"),
        ("every:0s", "shorter than"),
        ("at:tomorrow", "ISO 8601"),
    ],
)
def test_bad_schedules_say_what_to_write(text, says):
    with pytest.raises(BadSchedule) as exc:
        parse_schedule(text)
    assert says in str(exc.value)
