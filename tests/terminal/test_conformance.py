"""Recorded byte streams of real programs, replayed and compared cell by cell with
the screen tmux showed at the end of the recording (see record_streams.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from crowdtui.terminal import Emulator

from .expected_screens import emulator_cells, parse_capture

STREAMS = Path(__file__).resolve().parent / "streams"
NAMES = sorted(p.stem for p in STREAMS.glob("*.json"))


def load(name: str):
    expected = json.loads((STREAMS / f"{name}.json").read_text())
    return (STREAMS / f"{name}.bin").read_bytes(), expected


def describe(y, x, got, want) -> str:
    diffs = [f for f in want._fields if getattr(got, f) != getattr(want, f)]
    return f"row {y} col {x}: " + ", ".join(f"{f} {getattr(got, f)!r} != expected {getattr(want, f)!r}" for f in diffs)


def assert_same_screen(emu: Emulator, expected: dict) -> None:
    want = parse_capture(expected["capture"], expected["rows"], expected["cols"])
    got = emulator_cells(emu)
    problems = [describe(y, x, got[y][x], want[y][x])
                for y in range(expected["rows"]) for x in range(expected["cols"]) if got[y][x] != want[y][x]]
    assert not problems, f"{len(problems)} cells differ:\n" + "\n".join(problems[:15])
    cur = expected["cursor"]
    assert emu.cursor == (cur["x"], cur["y"])  # x == cols: a wrap is pending, in both
    assert emu.cursor_visible == cur["visible"]
    assert emu.alternate == expected["alternate"]


def test_all_programs_are_recorded():
    assert {"vim", "less", "top", "shell", "altmouse", "altmouse_exit"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_whole_stream(name):
    data, expected = load(name)
    emu = Emulator(expected["rows"], expected["cols"])
    emu.feed(data)
    assert_same_screen(emu, expected)


@pytest.mark.parametrize("name", NAMES)
def test_stream_in_random_chunks(name):
    """Split anywhere — inside UTF-8 characters and escape sequences — same screen."""
    data, expected = load(name)
    rng = random.Random(name)
    emu = Emulator(expected["rows"], expected["cols"])
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 1, 2, 3, 7, 64, 500])
        emu.feed(data[pos : pos + n])
        pos += n
    assert_same_screen(emu, expected)
