"""Random and hostile byte streams never raise and never leave the terminal unusable."""

from __future__ import annotations

import asyncio
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdtui.terminal import Emulator
from crowdtui.tui.widgets.terminal import Terminal

from .app import TerminalTestApp

RECOVER = b"\x18\x1bc"  # CAN aborts any sequence in progress, RIS resets the terminal

HOSTILE_PARTS = [
    b"\x1b", b"\x1b[", b"\x1b]", b"\x1bP", b"\x1b_", b"\x1b^", b"\x1bX", b"\x9b", b"\x9d", b"\x1b[?", b"\x1b[>",
    b"\x1b[?4m", b"\x1b[>4;2m", b"\x1b[2 q", b"\x1b[1$p", b"\x1b[!p", b"\x1b[38:2::1:2:3m", b"\x1b[58;5;3m",
    b"\x1b[9999;9999H", b"\x1b[99999999999999999999999A", b"\x1b[1;2;3;4;5;6;7;8A", b"\x1b[?1049h",
    b"\x1b[?1049l", b"\x1b[?47h", b"\x1b[?1047l", b"\x1b[?3h", b"\x1b[?5h", b"\x1b[?6h", b"\x1b[?1000h",
    b"\x1b[?1006h", b"\x1b[?2004h", b"\x1b[?25l", b"\x1b[10;5r", b"\x1b[5;1r", b"\x1b7", b"\x1b8", b"\x1b#8",
    b"\x1b(0", b"\x1b)B", b"\x0e", b"\x0f", b"\x1b%G", b"\x1b*A", b"\x1b[6n", b"\x1b[?6n", b"\x1b[c",
    b"\x1b[>c", b"\x1b]0;" + b"t" * 5000 + b"\x07", b"\x1b]8;;http://x\x1b\\", b"\x1b]52;c;YQ==\x07",
    b"\xff\xfe", b"\xe4\xb8", b"\xad", b"\xcc\x81", b"\xf0\x9f\x98\x80", b"\x00", b"\x7f", b"\x18", b"\x1a",
    b"\r\n", b"\n", b"\t", b"\b", b"text", b"\x1b[" + b"1" * 6000 + b"m", b"\x1b[" + b";" * 500 + b"m",
    b"\x1b[4:3m", b"\x1b[3;J", b"\x1b[@", b"\x1b[99999@", b"\x1b[99999P", b"\x1b[99999L", b"\x1b[99999M",
]
HOSTILE = st.sampled_from(HOSTILE_PARTS)


def assert_usable(emu: Emulator) -> None:
    emu.feed(RECOVER + "hello \x1b[31mworld\x1b[0m 中\r\nnext".encode())
    text = emu.text()
    assert text[0].startswith("hello world 中")
    assert text[1].startswith("next")
    assert emu.line(0)[6].fg == "red" and emu.line(0)[0].fg == "default"
    assert emu.cursor == (4, 1)
    assert not emu.alternate


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), rows=st.integers(1, 30), cols=st.integers(31, 100))
def test_random_bytes(data, rows, cols):
    emu = Emulator(rows, cols)
    emu.feed(data)
    emu.resize(rows + 1, cols - 1)
    for y in range(emu.rows):
        emu.line(y)
    assert_usable(emu)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(HOSTILE, max_size=80), splits=st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_hostile_sequences(parts, splits):
    data = b"".join(parts)
    emu = Emulator(10, 40, scrollback=50)
    pos, i = 0, 0
    while pos < len(data):  # split anywhere, including inside sequences and characters
        n = splits[i % len(splits)]
        emu.feed(data[pos : pos + n])
        pos, i = pos + n, i + 1
    assert len(emu.title) <= 4096
    assert len(emu.screen.savepoints) <= 16
    assert (emu.rows, emu.cols) == (10, 40)  # DECCOLM cannot resize behind the PTY's back
    for k in range(emu.history_size):
        emu.history_line(k)
    assert_usable(emu)


async def test_widget_survives_hostile_streams():
    """The widget paints every line of a terminal fed random junk, then paints normal text."""
    rng = random.Random(5)
    app = TerminalTestApp(None)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        for _ in range(40):
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 3000)))
            junk += b"".join(rng.choice(HOSTILE_PARTS) for _ in range(30))
            term._on_output(junk)
            term._flush()
            for y in range(term.size.height):
                strip = term.render_line(y)
                assert strip.cell_length == term.size.width
            term.scroll_history(5)
            for y in range(term.size.height):
                term.render_line(y)
            term.scroll_history(-1000)
        term._on_output(RECOVER + b"all good \x1b[1mhere\x1b[0m")
        term._flush()
        await pilot.pause(0.1)
        assert term.render_line(0).text.startswith("all good here")



@settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(st.one_of(HOSTILE, st.binary(max_size=300)), min_size=1, max_size=60),
    size=st.sampled_from([(40, 10), (80, 24), (23, 7)]),
)
def test_widget_survives_hypothesis_streams(parts, size):
    """Hypothesis drives the real widget in a real app: every line paints at full
    width after each chunk, and normal text paints correctly afterwards."""
    asyncio.run(_drive_widget(parts, size))


async def _drive_widget(parts: list[bytes], size: tuple[int, int]) -> None:
    app = TerminalTestApp(None)
    async with app.run_test(size=size) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        for part in parts:
            term._on_output(part)
        while term._pending:
            term._flush()
        for y in range(term.size.height):
            assert term.render_line(y).cell_length == term.size.width
        await pilot.pause()
        term._on_output(RECOVER + b"ok \x1b[32mfine\x1b[0m")
        term._flush()
        await pilot.pause()
        assert term.render_line(0).text.startswith("ok fine")
        assert not term.emulator.alternate


# -- window titles ---------------------------------------------------------------------

TITLE_ECHO = r"""
import os, sys, termios
attrs = termios.tcgetattr(0)
attrs[3] &= ~termios.ECHO
termios.tcsetattr(0, termios.TCSANOW, attrs)
os.write(1, b"ready\r\n")
for n, line in enumerate(sys.stdin):
    os.write(1, bytes.fromhex(line.strip()) + b"shown %d\r\n" % n)
"""

HOSTILE_TITLES = [
    # (bytes the program prints, the title the emulator keeps)
    (b"\x1b]0;[/broken\x07", "[/broken"),
    (b"\x1b]2;[bold]open[/bold][/]\x07", "[bold]open[/bold][/]"),
    (b"\x1b]0;[@click=app.quit]x[/]\x07", "[@click=app.quit]x[/]"),
    (b"\x1b]0;[link=https://evil]l[/link] [on red]\x07", "[link=https://evil]l[/link] [on red]"),
    ("\x1b]2;a\x08b\u202ec\x7fd\tz\x07".encode(), "a\x08b\u202ec\x7fd\tz"),
]


async def test_hostile_window_titles_are_plain_text_in_the_border():
    """A program's OSC 0/2 title is shown literally in the border: it can neither
    crash the app with broken markup nor add click actions, styles or control characters."""
    import sys

    from textual.geometry import Region

    from crowdtui.tui.text import inert

    from .local_pty import LocalPtySession

    session = LocalPtySession([sys.executable, "-c", TITLE_ECHO])
    app = TerminalTestApp(session)
    try:
        async with app.run_test(size=(100, 12)) as pilot:
            term = app.query_one(Terminal)

            async def until(predicate, what):
                deadline = asyncio.get_running_loop().time() + 15
                while not predicate():
                    assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
                    await pilot.pause(0.05)

            def border() -> list:
                return list(term.render_lines(Region(0, 0, term.outer_size.width, 1))[0])

            await until(lambda: "ready" in "\n".join(term.emulator.text()), "the program")
            for n, (raw, title) in enumerate(HOSTILE_TITLES):
                term.send(raw.hex().encode() + b"\r")
                await until(lambda: f"shown {n}" in "\n".join(term.emulator.text()), f"title {n}")
                await until(lambda: term._title == title, f"title {n} taken")
                await pilot.pause()
                for _ in range(2):  # the border is redrawn on blur and on focus too
                    assert app.is_running and app.return_code is None
                    text = "".join(seg.text for seg in border())
                    assert f" {inert(title)} · ctrl+] releases " in text, text
                    for seg in border():
                        assert not (seg.style and seg.style.meta), seg  # no @click, no link
                        assert not (seg.style and (seg.style.bold or seg.style.link)), seg
                    await pilot.press("ctrl+right_square_bracket")
                    await pilot.pause()
                    assert not term.has_focus
                    term.focus()
                    await pilot.pause()
                if "@click" in title:
                    # Clicking where the title's "x" is drawn does nothing to the app.
                    x = "".join(seg.text for seg in border()).index("]x[") + 1
                    await pilot.click(Terminal, offset=(x, 0))
                    await pilot.pause(0.1)
                    assert app.is_running and app.return_code is None
                assert "\x1b" not in app.export_screenshot() and "\x08" not in app.export_screenshot()
            assert app.is_running
    finally:
        session.close()
