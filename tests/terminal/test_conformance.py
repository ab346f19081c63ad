"""Recorded byte streams of real programs, replayed into the emulator and compared cell
by cell — text, colours, attributes, cursor position and visibility, alternate screen —
with the screens tmux showed at each step of the recording, resizes included (see
record_streams.py; tmux is the reference, never our own output)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from crowdtui.terminal import Emulator

from .expected_screens import emulator_cells, parse_capture, same_cell

STREAMS = Path(__file__).resolve().parent / "streams"
NAMES = sorted(p.name[: -len(".bin.gz")] for p in STREAMS.glob("*.bin.gz"))

#: Recordings on which the emulator is known to differ from tmux: name -> (why, the
#: differences as ``summary`` gives them: each row that differs, how many cells, which
#: fields). Anything else differing fails; so does a known difference that changed or
#: went away (then remove it here).
KNOWN: dict[str, tuple[str, list[str]]] = {}


def load(name: str) -> tuple[bytes, dict]:
    expected = json.loads((STREAMS / f"{name}.json").read_text())
    return gzip.decompress((STREAMS / f"{name}.bin.gz").read_bytes()), expected


def describe(y: int, x: int, got, want) -> str:
    diffs = [f for f in want._fields if getattr(got, f) != getattr(want, f) and getattr(want, f) is not None]
    return f"row {y} col {x}: " + ", ".join(f"{f} {getattr(got, f)!r} != tmux {getattr(want, f)!r}" for f in diffs)


def screen_differences(emu: Emulator, screen: dict) -> list[str]:
    """Every way the emulator's screen differs from tmux's at one step."""
    rows, cols = screen["rows"], screen["cols"]
    if (emu.rows, emu.cols) != (rows, cols):
        return [f"size {emu.cols}x{emu.rows} != tmux {cols}x{rows}"]
    want = parse_capture(screen["capture"], rows, cols)
    got = emulator_cells(emu)
    out = [describe(y, x, got[y][x], want[y][x])
           for y in range(rows) for x in range(cols) if not same_cell(got[y][x], want[y][x])]
    cur = screen["cursor"]
    if emu.cursor != (cur["x"], cur["y"]):  # x == cols: a wrap is pending, in both
        out.append(f"cursor at {emu.cursor} != tmux {(cur['x'], cur['y'])}")
    if emu.cursor_visible != cur["visible"]:
        out.append(f"cursor visible {emu.cursor_visible} != tmux {cur['visible']}")
    if emu.alternate != screen["alternate"]:
        out.append(f"alternate screen {emu.alternate} != tmux {screen['alternate']}")
    return out


def replay(name: str, chunk_sizes: list[int] | None = None) -> list[str]:
    """Feed the recording step by step (in random chunks if given); the differences
    from tmux at every step, each prefixed with the step."""
    data, expected = load(name)
    emu = Emulator(expected["rows"], expected["cols"])
    rng = random.Random(name)
    pos = 0
    problems: list[str] = []
    for i, step in enumerate(expected["steps"]):
        while pos < step["at"]:
            n = rng.choice(chunk_sizes) if chunk_sizes else step["at"] - pos
            emu.feed(data[pos : min(pos + n, step["at"])])
            pos = min(pos + n, step["at"])
        if "resize" in step:
            emu.resize(step["resize"]["rows"], step["resize"]["cols"])
        else:
            where = f"step {i} ({step['screen']['cols']}x{step['screen']['rows']}, byte {pos})"
            problems += [f"{where} {p}" for p in screen_differences(emu, step["screen"])]
    assert pos == len(data), "the last step is the end of the stream"
    return problems


def summary(problems: list[str]) -> list[str]:
    """Differences per row: how many cells, which fields (cursor lines as they are)."""
    rows: dict[str, tuple[int, set]] = {}
    for p in problems:
        where, sep, rest = p.partition(" col ")
        if not sep:
            rows[p] = (0, set())
            continue
        fields = {f.split(" ", 1)[0] for f in rest.split(": ", 1)[1].split(", ")}
        n, seen = rows.get(where, (0, set()))
        rows[where] = (n + 1, seen | fields)
    return [f"{where}: {n} cells ({', '.join(sorted(fields))})" if n else where for where, (n, fields) in rows.items()]


def check(name: str, problems: list[str]) -> None:
    if name in KNOWN:
        reason, known = KNOWN[name]
        assert summary(problems) == known, (
            f"{name}: the known difference ({reason}) changed; now:\n" + "\n".join(summary(problems)))
        return
    assert not problems, f"{name}: {len(problems)} differences from tmux:\n" + "\n".join(problems[:40])


def test_corpus_covers_the_programs_and_sizes():
    assert {"vim", "vim_splits", "less", "man", "top", "htop", "nano", "mc", "dialog", "dialog_exit",
            "dialog_shift_out", "whiptail", "tmux_inside", "textual_app", "git_log", "python_repl",
            "shell", "bash_editing", "shell_resize", "altmouse", "altmouse_exit", "claude_code"} <= set(NAMES)
    sizes, resized = set(), 0
    for name in NAMES:
        _data, expected = load(name)
        sizes |= {(s["screen"]["rows"], s["screen"]["cols"]) for s in expected["steps"] if "screen" in s}
        resized += any("resize" in s for s in expected["steps"])
    assert len(sizes) >= 8 and resized >= 12, (sizes, resized)
    assert set(KNOWN) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_recording_matches_tmux(name):
    check(name, replay(name))


@pytest.mark.parametrize("name", NAMES)
def test_recording_in_random_chunks(name):
    """Split anywhere — inside UTF-8 characters and escape sequences — same screens."""
    check(name, replay(name, [1, 1, 2, 3, 7, 64, 500]))


def test_line_drawing_letters_display_as_tmux_draws_them():
    """ESC ( 0 / ESC ) 0 with SO/SI, in UTF-8: each letter displays as tmux's client draws it."""
    from .expected_screens import TMUX_LINE_DRAWING

    letters = "".join(TMUX_LINE_DRAWING)
    emu = Emulator(4, 80)
    emu.feed(f"\x1b(0{letters}\x1b(B{letters}\r\n\x1b)0\x0e{letters}\x0f{letters}\r\n".encode())
    emu.feed("\x1b(0lq\x1b7\x1b(Bk\x1b8k\r\n".encode())  # DECRC restores the designation
    shown = "".join(TMUX_LINE_DRAWING[c] for c in letters)
    n = len(letters)
    assert emu.text()[0][: 2 * n] == shown + letters
    assert emu.text()[1][: 2 * n] == shown + letters
    assert emu.text()[2][:3] == "┌─┐"
