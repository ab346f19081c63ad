"""Reflow on resize, as tmux does it: rows that autowrap continued are joined and wrapped
again at the new width (scrollback included); rows that ended with a line break are
never joined; the cursor keeps its place in the text; the alternate screen is cut, not
reflowed. (tests/terminal/test_conformance.py checks the same against tmux's own screens
for a recorded shell: ``shell_resize``.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crowdtui.terminal import Emulator
from crowdtui.terminal.emulator import FAST_PATH_MIN_CHARS


def feed(emu: Emulator, text: str) -> None:
    emu.feed(text.encode())


def all_text(emu: Emulator) -> list[str]:
    """Scrollback then screen, each row with trailing blanks cut."""
    rows = ["".join(c.data for c in emu.history_line(i)) for i in range(emu.history_size)]
    return [r.rstrip() for r in rows + emu.text()]


def cells(emu: Emulator) -> list[list]:
    return [emu.line(y) for y in range(emu.rows)]


LINES = [
    "$ make test",
    "\x1b[32mok\x1b[0m " + "the quick brown fox jumps over the lazy dog " * 3,  # wraps at 80
    "x" * 80,  # exactly as wide as the screen: autowrap never ran
    "short",
    "中文字符 wide " * 9,
    "",
    "\x1b[1;41m" + "red and bold " * 8 + "\x1b[0m",
]


def test_narrow_then_wide_gives_back_every_cell():
    emu = Emulator(24, 80)
    feed(emu, "\r\n".join(LINES) + "\r\n$ ")
    before_cells, before_cursor = cells(emu), emu.cursor
    for cols in (50, 33, 17, 61):
        emu.resize(24, cols)
    emu.resize(24, 80)
    assert cells(emu) == before_cells
    assert emu.cursor == before_cursor


def test_narrower_rewraps_instead_of_cutting():
    emu = Emulator(10, 40)
    feed(emu, "0123456789" * 6 + "\r\nnext line\r\n$ ")
    emu.resize(10, 25)
    # As tmux: the screen's rows, blank ones included, are rewrapped; the row that
    # no longer fits goes to scrollback.
    assert all_text(emu)[:5] == ["0123456789012345678901234", "5678901234567890123456789",
                                 "0123456789", "next line", "$"]
    assert emu.history_size == 1 and emu.cursor == (2, 3)
    emu.resize(10, 100)
    assert all_text(emu)[:3] == ["0123456789" * 6, "next line", "$"]
    assert emu.history_size == 0 and emu.cursor == (2, 2)


def test_lines_that_ended_with_a_line_break_are_not_joined():
    emu = Emulator(6, 20)
    feed(emu, "a" * 20 + "\r\n" + "b" * 20 + "\r\nc\r\nd")
    emu.resize(6, 60)
    assert [r.rstrip() for r in emu.text()[:4]] == ["a" * 20, "b" * 20, "c", "d"]


def test_a_row_cleared_whole_is_no_longer_a_continuation():
    emu = Emulator(6, 20)
    feed(emu, "a" * 25)  # 20 a's wrap on to the next row
    feed(emu, "\x1b[2K\r" + "b" * 5)  # the second row is cleared and written again
    emu.resize(6, 40)
    assert [r.rstrip() for r in emu.text()[:2]] == ["a" * 20, "b" * 5]


def test_cursor_follows_its_place_in_the_text():
    emu = Emulator(12, 80)
    typed = "".join(chr(ord("a") + i % 26) for i in range(150))
    feed(emu, "output\r\n" * 10 + "$ " + typed + "\x1b[40D")  # back 40, inside the wrapped line
    x, y = emu.cursor
    under = emu.line(y)[x].data
    for cols in (30, 57, 120, 80):
        emu.resize(12, cols)
        x, y = emu.cursor
        assert emu.line(y)[x].data == under, cols
    feed(emu, "!")  # typing goes on where it was
    assert "".join(all_text(emu)).endswith("$ " + typed[:110] + "!" + typed[111:])


def test_cursor_whose_row_went_to_scrollback_goes_home_as_in_tmux():
    # Checked with tmux 3.3a: an 80x10 pane, the same bytes, resize-window -x 30 gives
    # cursor 0 0, history_size 4, first row "opqrstuvwxyzabcdefghijklmnopqr".
    emu = Emulator(10, 80)
    typed = ("abcdefghijklmnopqrstuvwxyz" * 6)[:150]
    feed(emu, "$ " + typed + "\x1b[40D")
    assert emu.cursor == (32, 1)
    emu.resize(10, 30)
    assert (emu.cursor, emu.history_size) == ((0, 0), 4)
    assert emu.text()[0] == "opqrstuvwxyzabcdefghijklmnopqr"


def test_cursor_past_the_end_of_its_text_lands_at_the_end():
    emu = Emulator(6, 40)
    feed(emu, "$ abc\x1b[20C")  # the cursor 20 columns past the text
    emu.resize(6, 30)
    assert emu.cursor == (5, 0)  # as tmux: at the end of the row's text


def test_scrollback_reflows_too():
    emu = Emulator(5, 40)
    long_lines = [f"{i:02d} " + "y" * 60 for i in range(10)]
    feed(emu, "\r\n".join(long_lines) + "\r\n$ ")
    assert emu.history_size > 0
    emu.resize(5, 100)
    text = [r for r in all_text(emu) if r]
    assert text == long_lines + ["$"]
    emu.resize(5, 20)
    assert [r for r in all_text(emu) if r][:4] == [long_lines[0][:20], long_lines[0][20:40],
                                                  long_lines[0][40:60], long_lines[0][60:]]
    assert emu.cursor == (2, 4)


def test_the_flood_fast_path_scrollback_reflows_as_cell_by_cell_scrollback():
    rng = random.Random(5)
    lines = ["".join(rng.choice("abcdef ") for _ in range(rng.randint(0, 130))) for _ in range(400)]
    text = "\r\n".join(lines) + "\r\n"
    assert len(text) > FAST_PATH_MIN_CHARS * 4
    fast, slow = Emulator(8, 50), Emulator(8, 50, fast_path=False)
    fast.feed_text(text)
    slow.feed_text(text)
    assert fast.skipped_chars > 0
    for cols in (80, 31, 140):
        fast.resize(8, cols)
        slow.resize(8, cols)
        assert all_text(fast) == all_text(slow), cols
        assert fast.cursor == slow.cursor


def test_alternate_screen_is_cut_not_reflowed():
    emu = Emulator(6, 40)
    feed(emu, "p" * 60 + "\r\n$ ")
    feed(emu, "\x1b[?1049h\x1b[H" + "q" * 60)
    emu.resize(6, 20)
    assert [r.rstrip() for r in emu.text()[:3]] == ["q" * 20, "q" * 20, ""]
    emu.resize(6, 40)
    assert [r.rstrip() for r in emu.text()[:2]] == ["q" * 20, "q" * 20]
    feed(emu, "\x1b[?1049l")
    assert not emu.alternate
    assert [r.rstrip() for r in emu.text()[:3]] == ["p" * 40, "p" * 20, "$"]


def test_resize_keeps_the_programs_saved_cursor():
    emu = Emulator(10, 40)
    feed(emu, "\x1b[3;7H\x1b7\x1b[10;1H")
    emu.resize(6, 40)  # the screen shrinks from the top: the rows move, the slot does not
    feed(emu, "\x1b8")
    assert emu.cursor == (6, 2)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.text(alphabet="ab c\u4e2d", max_size=90), min_size=1, max_size=12),
    st.lists(st.integers(min_value=2, max_value=120), min_size=1, max_size=4),
)
def test_any_widths_then_the_first_again_give_the_same_text(lines, widths):
    emu = Emulator(30, 40)
    feed(emu, "\r\n".join(lines))
    before = all_text(emu)
    before_cursor = emu.cursor
    for cols in widths:
        emu.resize(30, cols)
    emu.resize(30, 40)
    assert all_text(emu) == before
    assert emu.cursor == before_cursor


# Byte streams whose reflow was compared with tmux 3.3a itself: (columns, rows, bytes, new columns).
TMUX_CASES = {
    "erased_after_5_on_a_wrapped_row": (40, 10, "x" * 50 + "\x1b[A\rshort\x1b[K\x1b[B\r\n$ ", 80),
    "continuation_cleared_whole": (40, 10, "y" * 50 + "\x1b[2K\rnew\r\n$ ", 80),
    "delete_characters": (40, 10, "$ abcdefgh\x1b[5D\x1b[P\x1b[P", 20),
    "insert_characters": (40, 10, "$ abcdef\x1b[3D\x1b[2@", 25),
    "erase_below": (40, 10, "z" * 90 + "\x1b[2A\r\x1b[J" + "after\r\n", 80),
    "wide_characters": (20, 10, "\u4e2d\u6587\u5b57\u7b26" * 6 + "\r\nend", 13),
    "cursor_past_the_text": (40, 10, "abc\r\n\r\n\x1b[10Cq\x1b[5D", 30),
    "narrow": (40, 10, "w" * 45 + "\r\n" + "v" * 39 + "\r\n$ ", 17),
}


@pytest.mark.parametrize("name", sorted(TMUX_CASES))
def test_reflow_matches_tmux_run_now(name, tmp_path):
    """The same bytes in a private tmux server, the window resized: same text and cursor."""
    cols, rows, data, new_cols = TMUX_CASES[name]
    stream = tmp_path / "stream.bin"
    stream.write_text(data)
    base = ["tmux", "-L", f"crowdtui-reflow-{os.getpid()}", "-f", "/dev/null"]

    def tmux(*args: str) -> str:
        done = subprocess.run(base + list(args), capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout

    tmux("new-session", "-d", "-x", str(cols), "-y", str(rows),
         f"stty raw -echo; cat {stream}; touch {stream}.done; exec sleep 30")
    pane, socket_path = tmux("display", "-p", "#{pane_pid} #{socket_path}").split()
    try:
        tmux("set", "-g", "status", "off")
        deadline = time.monotonic() + 10
        while not (tmp_path / "stream.bin.done").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # tmux has read what cat wrote
        tmux("resize-window", "-x", str(new_cols), "-y", str(rows))
        want = [r.rstrip() for r in tmux("capture-pane", "-p").split("\n")[:rows]]
        x, y = map(int, tmux("display", "-p", "#{cursor_x} #{cursor_y}").split())
    finally:
        try:
            os.kill(int(pane), signal.SIGKILL)
        except ProcessLookupError:
            pass
        subprocess.run(base + ["kill-server"], capture_output=True, timeout=10)
        Path(socket_path).unlink(missing_ok=True)  # tmux leaves it behind
    emu = Emulator(rows, cols)
    feed(emu, data)
    emu.resize(rows, new_cols)
    assert [r.rstrip() for r in emu.text()] == want
    assert emu.cursor == (x, y)
