"""Redraw storms: the fast draw, EL, CUP and the SGR/parameter caches give exactly
the screen plain pyte gives for the same bytes."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdtui.terminal import Emulator
from crowdtui.terminal import emulator as emulator_module
from crowdtui.terminal.screen import MAX_CELL_CACHES

from .test_flood import assert_same_as_pyte, ours, plain_pyte


def storm(frames: int, rows: int, cols: int, seed: int = 5) -> bytes:
    rng = random.Random(seed)
    out = []
    for f in range(frames):
        out.append("\x1b[H")
        if rng.random() < 0.1:
            out.append("\x1b[?5h" if f % 2 else "\x1b[?5l")  # reverse screen changes what SGR 0 means
        if rng.random() < 0.1:
            out.append("\x1b[?7l" if f % 3 else "\x1b[?7h")  # autowrap off: text piles up in the last column
        for y in range(rows):
            sgr = rng.choice(["\x1b[0m", "\x1b[m", f"\x1b[3{(y + f) % 8};4{f % 8}m", "\x1b[1;7m", "\x1b[38;5;99m", "\x1b[22m"])
            text = f"f{f} r{y} " + rng.choice(["=", "-", "#"]) * rng.randint(0, cols + 5)
            out.append(f"\x1b[{y + 1};{rng.randint(1, 3)}H{sgr}{text}\x1b[0m\x1b[{rng.choice(['', '0', '1', '2'])}K")
    return "".join(out).encode()


def test_redraw_storm_equals_plain_pyte():
    for rows, cols in [(24, 80), (5, 20), (1, 10)]:
        data = storm(300, rows, cols)
        for chunk in (13, 4096, 65536):
            assert_same_as_pyte(ours(data, rows, cols, chunk), plain_pyte(data, rows, cols, chunk))


TOKENS = st.sampled_from(
    ["word", "x" * 30, "中", " ", "\r\n", "\r", "\x1b[H", "\x1b[3;4H", "\x1b[99;99H", "\x1b[;5H", "\x1b[0;0f",
     "\x1b[31m", "\x1b[0m", "\x1b[m", "\x1b[1;4;7m", "\x1b[38;5;100m", "\x1b[48;2;1;2;3m", "\x1b[22m", "\x1b[7m",
     "\x1b[K", "\x1b[1K", "\x1b[2K", "\x1b[?5h", "\x1b[?5l", "\x1b[?7l", "\x1b[?7h", "\x1b[4h", "\x1b[4l",
     "\x1b[2;4r", "\x1b[r", "\x1b[?6h", "\x1b[?6l", "\x1bc", "\x1b[A", "\x1b[5G"]
)


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(TOKENS, min_size=20, max_size=400), rows=st.integers(1, 8), cols=st.integers(2, 30),
       chunk=st.sampled_from([5, 64, 100000]))
def test_cursor_moves_colours_and_erases_equal_plain_pyte(tokens, rows, cols, chunk):
    data = "".join(tokens * 2).encode()
    assert_same_as_pyte(ours(data, rows, cols, chunk), plain_pyte(data, rows, cols, chunk))


def test_invalid_erase_in_line_is_ignored_and_the_rest_of_the_chunk_still_drawn():
    emu = Emulator(2, 20)
    emu.feed(b"abc\x1b[3Kdef")
    assert emu.text()[0].rstrip() == "abcdef"


def test_cell_caches_stay_bounded_under_ever_new_colours():
    emu = Emulator(2, 20)
    emu.feed("".join(f"\x1b[38;2;{i % 256};{i // 256 % 256};1mx" for i in range(3 * MAX_CELL_CACHES)).encode())
    assert len(emu.screen._cell_caches) <= MAX_CELL_CACHES


def full_screen_redraws(frames: int, rows: int, cols: int) -> bytes:
    """What a full-screen program sends: home, then each row rewritten in colour."""
    out = []
    for f in range(frames):
        out.append("\x1b[H")
        for y in range(rows):
            text = f"frame {f:06d} row {y:02d} " + "=" * (cols - 24)
            out.append(f"\x1b[{y + 1};1H\x1b[3{(y + f) % 8};4{(y * 3 + f) % 8}m{text[:cols - 1]}\x1b[0m\x1b[K")
        if f % 50 == 7:
            out.append("\x1b[?5h\x1b[2;5Hpartial\x1b[1K\x1b[?5l")  # not a row rewrite: stays exact
    return "".join(out).encode()


def test_storm_fast_path_skips_rewritten_rows_and_changes_nothing():
    rows, cols = 24, 80
    data = full_screen_redraws(400, rows, cols)
    fast = ours(data, rows, cols, 65536)
    slow = ours(data, rows, cols, 65536, fast=False)
    assert fast.skipped_chars > 0.5 * len(data)  # most frames were overwritten unseen
    for y in range(rows):
        assert fast.line(y) == slow.line(y), f"row {y}"
    assert fast.cursor == slow.cursor
    assert fast.screen.cursor.attrs == slow.screen.cursor.attrs
    assert_same_as_pyte(fast, plain_pyte(data, rows, cols, 65536))


# Row rewrites (the storm fast path's grammar) and everything that must stop or bend it.
ROW_TOKENS = st.sampled_from(
    ["\x1b[1;1Hrow one\x1b[K", "\x1b[2Hsecond\x1b[0K", "\x1b[3;1H\x1b[31mred\x1b[0m row\x1b[2K",
     "\x1b[1;1H\x1b[1;7m" + "w" * 25 + "\x1b[m\x1b[K", "\x1b[H", "\x1b[5;3H", "\x1b[2;1Hx\x1b[1K",
     "\x1b[99;1Hbottom\x1b[K", "\x1b[0;1Hzero\x1b[K", "\x1b[2;1H" + "long " * 8 + "\x1b[K",
     "\x1b[38;5;100m", "\x1b[0m", "\x1b[22m", "\x1b[38:2::1:2:3m", "\x1b[?6h", "\x1b[?6l", "\x1b[2;4r",
     "\x1b[r", "\x1b[4h", "\x1b[4l", "\x1b[?5h", "\x1b[?5l", "\x1b[?7l", "\x1b[?7h", "\r\n", "中",
     "\x1bP1$r\x1b[1;1Hin dcs\x1b[K\x1b\\", "\x1b]0;\x1b[2;1Htitle\x1b[K\x07", "text", "\x1b[2J"]
)


PYTE_MISREADS = ("\x1b[38:2::1:2:3m", "\x1b]0;\x1b[2;1Htitle\x1b[K\x07", "\x1bP1$r\x1b[1;1Hin dcs\x1b[K\x1b\\")


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(ROW_TOKENS, min_size=10, max_size=300), rows=st.integers(1, 6),
       cols=st.integers(2, 30), chunk=st.sampled_from([7, 64, 100000]))
def test_row_rewrite_fast_path_is_invisible(tokens, rows, cols, chunk):
    old = emulator_module.FAST_PATH_MIN_CHARS
    emulator_module.FAST_PATH_MIN_CHARS = 16  # engage it even on small inputs
    try:
        data = "".join(tokens * 3).encode()
        fast = ours(data, rows, cols, chunk, fast=True)
        slow = ours(data, rows, cols, chunk, fast=False)
    finally:
        emulator_module.FAST_PATH_MIN_CHARS = old
    for y in range(rows):
        assert fast.line(y) == slow.line(y), f"row {y}"
    assert fast.cursor == slow.cursor
    assert fast.screen.cursor.attrs == slow.screen.cursor.attrs
    if not any(t in tokens for t in PYTE_MISREADS):  # pyte prints these as text; we do not
        assert_same_as_pyte(fast, plain_pyte(data, rows, cols, chunk))
