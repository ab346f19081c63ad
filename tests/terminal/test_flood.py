"""Floods: the fast path gives exactly the screen plain pyte gives for the same bytes
(pyte with two rules changed as xterm and tmux have them: see ``PyteReference``)."""

from __future__ import annotations

import random

import pyte
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdtui.terminal import Emulator
from crowdtui.terminal import emulator as emulator_module

PYTE_FIELDS = 9  # data, fg, bg, bold, italics, underscore, strikethrough, reverse, blink


class PyteReference(pyte.Screen):
    """Plain pyte, except for the two rules in which the emulator departs from it on
    purpose, as xterm and tmux have them (written here independently of ours):
    cells that are erased or inserted take only the background colour of the current
    attributes (pyte copies every attribute, and its ED leaves cells never written
    untouched); DECSC saves into one slot that DECRC keeps, and DECRC leaves cursor
    visibility and autowrap alone and does not clamp into the scrolling region."""

    def save_cursor(self):
        super().save_cursor()
        self.savepoints[:] = self.savepoints[-1:]

    def restore_cursor(self):
        if not self.savepoints:
            self.mode.discard(pyte.modes.DECOM)
            self.cursor.x = self.cursor.y = 0
            self.cursor.attrs = self.default_char
            return
        saved = self.savepoints[-1]
        self.g0_charset, self.g1_charset, self.charset = saved.g0_charset, saved.g1_charset, saved.charset
        (self.mode.add if saved.origin else self.mode.discard)(pyte.modes.DECOM)
        self.cursor.x = min(saved.cursor.x, self.columns - 1)
        self.cursor.y = min(saved.cursor.y, self.lines - 1)
        self.cursor.attrs = saved.cursor.attrs

    def _blank(self):
        return self.default_char._replace(bg=self.cursor.attrs.bg)

    def _fill(self, y, xs):
        for x in xs:
            self.buffer[y][x] = self._blank()

    def erase_in_line(self, how=0, private=False):
        x, y = self.cursor.x, self.cursor.y
        xs = {0: range(x, self.columns), 1: range(x + 1), 2: range(self.columns)}.get(how)
        if xs is not None:
            self.dirty.add(y)
            self._fill(y, xs)

    def erase_in_display(self, how=0, *args, **kwargs):
        y = self.cursor.y
        ys = {0: range(y + 1, self.lines), 1: range(y), 2: range(self.lines), 3: range(self.lines)}.get(how)
        if ys is not None:
            for row in ys:
                self._fill(row, range(self.columns))
            if how in (0, 1):
                self.erase_in_line(how)

    def erase_characters(self, count=None):
        x = self.cursor.x
        self._fill(self.cursor.y, range(x, min(self.columns, x + (count or 1))))

    def insert_characters(self, count=None):
        super().insert_characters(count)
        x = self.cursor.x
        self._fill(self.cursor.y, range(x, min(self.columns, x + (count or 1))))

    def delete_characters(self, count=None):
        super().delete_characters(count)
        self._fill(self.cursor.y, range(max(self.cursor.x, self.columns - (count or 1)), self.columns))

    def insert_lines(self, count=None):
        y = self.cursor.y
        super().insert_lines(count)
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= y <= bottom:
            for row in range(y, min(bottom + 1, y + (count or 1))):
                self._fill(row, range(self.columns))

    def delete_lines(self, count=None):
        y = self.cursor.y
        super().delete_lines(count)
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= y <= bottom:
            for row in range(max(y, bottom + 1 - (count or 1)), bottom + 1):
                self._fill(row, range(self.columns))


def plain_pyte(data: bytes, rows: int, cols: int, chunk: int) -> pyte.Screen:
    """The screen pyte gives (with the rules above) — an oracle sharing no code with
    the emulator's parser, draw, caches or fast paths."""
    screen = PyteReference(cols, rows)
    stream = pyte.ByteStream(screen)
    for k in range(0, len(data), chunk):
        stream.feed(data[k : k + chunk])
    return screen


def ours(data: bytes, rows: int, cols: int, chunk: int, fast: bool = True) -> Emulator:
    emu = Emulator(rows, cols, fast_path=fast)
    for k in range(0, len(data), chunk):
        emu.feed(data[k : k + chunk])
    return emu


def assert_same_as_pyte(emu: Emulator, screen: pyte.Screen) -> None:
    for y in range(screen.lines):
        for x in range(screen.columns):
            want = tuple(screen.buffer[y][x])
            got = tuple(emu.screen.buffer[y][x])[:PYTE_FIELDS]
            assert got == want, f"row {y} col {x}: {got} != {want}"
    assert emu.cursor == (screen.cursor.x, screen.cursor.y)


def log_flood(n: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.3:
            out.append(f"\x1b[3{i % 8}m{i:06d} INFO\x1b[0m request served in {rng.randint(1, 999)} ms {'x' * (i % 97)}\r\n")
        elif r < 0.4:
            out.append(f"\x1b[38;5;{i % 256}m{i}\t\x1b[1;48;2;{i % 256};20;30mB\x1b[K tail\x1b[22m\r\n")
        elif r < 0.45:
            out.append(f"progress {i % 100}%\rprogress {(i + 1) % 100}%\r\n")
        elif r < 0.5:
            out.append(f"wide 中文字符 and cafe\u0301 {i}\bZ\r\n")
        else:
            out.append(f"{i} plain log line with some words in it\r\n")
    return "".join(out).encode()


@pytest.mark.parametrize("chunk", [4096, 1 << 20])
@pytest.mark.parametrize("size", [(24, 80), (50, 132), (5, 20), (1, 40)])
def test_log_flood_screen_equals_plain_pyte(size, chunk):
    rows, cols = size
    data = log_flood(8000)
    emu = ours(data, rows, cols, chunk)
    assert_same_as_pyte(emu, plain_pyte(data, rows, cols, chunk))
    # And it did take the fast path (for most of it when chunks hold many screens).
    assert emu.skipped_chars > (0.8 if chunk > 100 * rows * cols else 0.1) * len(data.decode())


def test_flood_with_cursor_movement_equals_plain_pyte():
    rng = random.Random(7)
    parts = []
    for i in range(6000):
        parts.append(f"line {i} {'y' * (i % 50)}\r\n")
        if rng.random() < 0.01:
            parts.append(f"\x1b[{rng.randint(1, 30)};{rng.randint(1, 90)}H\x1b[1Amoved {i}\x1b[2K\x1b[5B")
        if rng.random() < 0.002:
            parts.append("\x1b[5;20r")  # scrolling region: the fast path must step aside
        if rng.random() < 0.002:
            parts.append("\x1b[r")
    data = "".join(parts).encode()
    for chunk in (1000, 65536):
        assert_same_as_pyte(ours(data, 24, 80, chunk), plain_pyte(data, 24, 80, chunk))


def test_seq_flood_reaches_scrollback_in_order():
    data = "".join(f"{i}\r\n" for i in range(1, 100001)).encode()
    emu = Emulator(24, 80, scrollback=1000)
    for k in range(0, len(data), 65536):
        emu.feed(data[k : k + 65536])
    assert emu.skipped_chars > 0
    screen = [row.strip() for row in emu.text()]
    assert screen[:23] == [str(i) for i in range(99978, 100001)]
    history = ["".join(c.data for c in emu.history_line(i)).strip() for i in range(emu.history_size)]
    assert len(history) == 1000
    assert history == [str(i) for i in range(98978, 99978)]


# Tokens: the fast-path grammar and everything that must stop it.
TOKENS = st.sampled_from(
    ["word", "中", "e\u0301", " ", "\r\n", "\n", "\r", "\t", "\b", "\x07", "\x1b[31m", "\x1b[0m", "\x1b[m",
     "\x1b[1;4;7m", "\x1b[38;5;100m", "\x1b[48;2;1;2;3m", "\x1b[22m", "\x1b[K", "\x1b[1K", "\x1b[2K",
     "\x1b[A", "\x1b[3;4H", "\x1b[2J", "\x1b[2;4r", "\x1b[r", "\x1b7", "\x1b8", "\x1bM", "\x1b[?7l",
     "\x1b[?7h", "\x1b[4h", "\x1b[4l", "\x1b[20h", "\x1b[20l", "\x1b[L", "\x1b[P", "\x1b[0;1m", "x" * 30]
)


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tokens=st.lists(TOKENS, min_size=50, max_size=600),
    rows=st.integers(1, 8),
    cols=st.integers(2, 30),
    chunk=st.sampled_from([7, 50, 300, 100000]),
)
def test_fast_path_is_invisible(tokens, rows, cols, chunk):
    """Random streams: fast path on or off, and plain pyte, give the same screen."""
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
    assert_same_as_pyte(fast, plain_pyte(data, rows, cols, chunk))


def test_flood_scrollback_keeps_each_lines_colours():
    lines = [f"\x1b[3{1 + i % 6}m{i:05d}\x1b[0m plain \x1b[1mbold\x1b[22m\r\n" for i in range(20000)]
    emu = Emulator(24, 80, scrollback=500)
    data = "".join(lines).encode()
    for k in range(0, len(data), 1 << 20):
        emu.feed(data[k : k + (1 << 20)])
    assert emu.skipped_chars > 0.9 * len(data)
    names = ["red", "green", "brown", "blue", "magenta", "cyan"]
    for k in range(emu.history_size):
        cells = emu.history_line(k)
        i = 20000 - 23 - emu.history_size + k
        assert "".join(c.data for c in cells).rstrip() == f"{i:05d} plain bold"
        assert cells[0].fg == names[i % 6] and cells[6].fg == "default"
        assert cells[12].bold and not cells[6].bold


# Sequences pyte itself does not act on (line drawing in UTF-8, SU/SD, REP): here the
# fast path is checked against the emulator's own cell-by-cell processing.
BEYOND_PYTE = st.sampled_from(["\x1b(0", "\x1b(B", "\x1b)0", "\x0e", "\x0f", "lqqk", "\x1b[2S", "\x1b[T",
                               "\x1b[3b", "\x1b[44m", "\x1b[?1049h", "\x1b[?1049l"])


@settings(max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tokens=st.lists(st.one_of(TOKENS, BEYOND_PYTE), min_size=50, max_size=600),
    rows=st.integers(1, 8),
    cols=st.integers(2, 30),
    chunk=st.sampled_from([7, 50, 300, 100000]),
)
def test_fast_path_is_invisible_with_line_drawing_and_scrolling(tokens, rows, cols, chunk):
    old = emulator_module.FAST_PATH_MIN_CHARS
    emulator_module.FAST_PATH_MIN_CHARS = 16
    try:
        data = "".join(tokens * 3).encode()
        fast = ours(data, rows, cols, chunk, fast=True)
        slow = ours(data, rows, cols, chunk, fast=False)
    finally:
        emulator_module.FAST_PATH_MIN_CHARS = old
    for y in range(rows):
        assert fast.line(y) == slow.line(y), f"row {y}"
    assert fast.cursor == slow.cursor


def test_not_g_finds_what_its_definition_says():
    """NOT_G is written as one character class with a lookbehind (for speed); it finds
    exactly the first control character outside G or ESC not beginning an SGR or EL."""
    import re

    from crowdtui.terminal.fastpath import NOT_G

    plain = re.compile(r"[\x00-\x06\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]|\x1b(?!\[[0-9;]*m|\[[0-2]?K)")
    rng = random.Random(11)
    pieces = ["a", "\x1b", "[", "m", "K", "0", "2", "3", ";", "\x07", "\x08", "\t", "\r", "\n", "\x01",
              "H", "\x9b", "\x7f", "中", "\x1b[31m", "\x1b[K", "\x1b[2K", "\x1b[3K", "\x1b[?25l"]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        want = plain.search(text)
        got = NOT_G.search(text)
        assert (got and got.start()) == (want and want.start()), repr(text)
