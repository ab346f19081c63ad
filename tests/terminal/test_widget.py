"""The Terminal widget in a real Textual app, over a real local PTY with bash."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from textual.keys import _character_to_key

from crowdtui.tui.widgets.terminal import Terminal
from tests.waiting import wait_for_app as wait_for  # noqa: F401  (test_input and test_widget_container use it)

from .app import TerminalTestApp
from .local_pty import LocalPtySession

BASH = shutil.which("bash")


def screen_text(term: Terminal) -> str:
    return "\n".join(term.emulator.text())


def rendered_text(term: Terminal) -> str:
    """What the widget actually paints (render_line), not just the emulator state."""
    return "\n".join(term.render_line(y).text for y in range(term.size.height))


async def type_line(pilot, text: str) -> None:
    """Type text key by key, as a user would, then Enter."""
    await pilot.press(*[ch if ch.isalnum() else _character_to_key(ch) for ch in text])
    await pilot.press("enter")


@pytest.fixture
async def shell():
    session = LocalPtySession([BASH, "--norc", "--noprofile", "-i"], env={"PS1": "$ "})
    yield session
    session.close()


async def test_typing_reaches_shell_and_output_appears(shell):
    app = TerminalTestApp(shell)
    async with app.run_test(size=(100, 30)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "$" in screen_text(term), what="the prompt")
        assert term.has_focus
        await type_line(pilot, "echo hi-$((6*7))")
        await wait_for(pilot, lambda: "hi-42" in screen_text(term), what="command output")
        await pilot.pause(0.1)
        assert "hi-42" in rendered_text(term)
        # The echo of what was typed is there too: keys went through the PTY.
        assert "echo hi-$((6*7))" in rendered_text(term)


async def test_resize_reaches_the_pty(shell):
    app = TerminalTestApp(shell)
    async with app.run_test(size=(100, 30)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "$" in screen_text(term), what="the prompt")
        rows, cols = term.size.height, term.size.width
        assert (term.emulator.rows, term.emulator.cols) == (rows, cols)
        await type_line(pilot, "stty size")
        await wait_for(pilot, lambda: f"{rows} {cols}" in screen_text(term), what="first stty size")
        await pilot.resize_terminal(70, 20)
        await wait_for(pilot, lambda: term.size.width < cols, what="widget resize")
        await pilot.pause(0.1)
        rows2, cols2 = term.size.height, term.size.width
        assert (rows2, cols2) != (rows, cols)
        await type_line(pilot, "clear; stty size")
        await wait_for(pilot, lambda: f"{rows2} {cols2}" in screen_text(term), what="stty size after resize")


async def test_release_key_gives_focus_back(shell):
    app = TerminalTestApp(shell)
    async with app.run_test(size=(100, 30)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "$" in screen_text(term), what="the prompt")
        assert "ctrl+]" in str(term.border_title)
        await pilot.press("ctrl+right_square_bracket")
        await pilot.pause(0.1)
        assert not term.has_focus
        assert any(isinstance(m, Terminal.FocusReleased) for m in app.messages)
        # Keys now go to the app, not to the program.
        app.query_one("#other").focus()
        await pilot.press("z", "q")
        await pilot.pause(0.3)
        assert app.query_one("#other").value == "zq"
        assert "zq" not in screen_text(term)


async def test_scrollback_browsing_does_not_disturb_program(shell):
    app = TerminalTestApp(shell)
    async with app.run_test(size=(100, 30)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "$" in screen_text(term), what="the prompt")
        await type_line(pilot, "seq 1 200")
        await wait_for(pilot, lambda: "200" in screen_text(term).split(), what="seq output")
        await pilot.pause(0.1)
        before = term.bytes_received
        await pilot.press("shift+pageup")
        await pilot.pause(0.1)
        assert term.scrolled_back > 0
        shown = rendered_text(term).split()
        assert "160" in shown and "200" not in shown
        await pilot.pause(0.3)
        assert term.bytes_received == before  # nothing was sent, nothing echoed
        await pilot.press("shift+pagedown", "shift+pagedown")
        await pilot.pause(0.1)
        assert term.scrolled_back == 0
        assert "200" in rendered_text(term).split()


async def test_scrolled_back_through_a_reflow_that_shortens_scrollback():
    """Widening joins wrapped rows, so scrollback gets shorter under a reader scrolled back."""
    app = TerminalTestApp(None)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        term._on_output("".join(f"{i:03d} " + "w" * 96 + "\r\n" for i in range(40)).encode())
        await wait_for(pilot, lambda: not term._pending and term._flush_handle is None, what="output digested")
        await pilot.press("shift+home")
        await pilot.pause()
        deep = term.scrolled_back
        assert deep > 40  # each line took two or more rows
        await pilot.resize_terminal(160, 20)
        await wait_for(pilot, lambda: term.emulator.cols > 100, what="the wider screen")
        assert term.scrolled_back <= term.emulator.history_size < deep
        shown = rendered_text(term)
        assert "000 " + "w" * 96 in shown  # the oldest line, whole again on one row


async def test_title_and_session_end(shell):
    app = TerminalTestApp(shell)
    async with app.run_test(size=(100, 30)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "$" in screen_text(term), what="the prompt")
        await type_line(pilot, "printf '\\033]2;my-title\\007'")
        await wait_for(pilot, lambda: term.emulator.title == "my-title", what="title")
        await pilot.pause(0.1)
        assert "my-title" in str(term.border_title)
        await type_line(pilot, "exit")
        await wait_for(pilot, lambda: term.closed, what="session close")
        await pilot.pause(0.1)
        assert any(isinstance(m, Terminal.Closed) for m in app.messages)


async def test_hidden_terminal_keeps_state_without_repaints():
    app = TerminalTestApp(None)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        term._on_output(b"before hiding\r\n")
        await wait_for(pilot, lambda: "before hiding" in rendered_text(term), what="first output")
        term.display = False
        await pilot.pause()
        repaints = term.repaints
        for i in range(200):
            term._on_output(f"hidden line {i}\r\n".encode())
            await pilot.pause(0.002)
        await wait_for(pilot, lambda: not term._pending and term._flush_handle is None, what="output digested")
        assert term.repaints == repaints  # nobody can see it: nothing was repainted
        assert "hidden line 199" in screen_text(term)  # but the state is current
        term.display = True
        await wait_for(pilot, lambda: "hidden line 199" in rendered_text(term), what="repaint on show")


async def test_repaints_are_capped_while_output_streams():
    """A stream of small writes is batched: a flush takes everything that arrived
    since the last one and repaints at most once, so repaints are bounded by the
    batches of output, never one per write; the final screen is current."""
    app = TerminalTestApp(None)
    bursts, per_burst = 30, 20
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        before_repaints, before_flushes = term.repaints, term.flushes
        n = 0
        for _ in range(bursts):  # writes arrive in bursts, the event loop turning between them
            for _ in range(per_burst):
                term._on_output(f"line {n}\r\n".encode())
                n += 1
            await asyncio.sleep(0)
        await wait_for(pilot, lambda: term._flush_handle is None and not term._pending, what="output digested")
        flushes = term.flushes - before_flushes
        repaints = term.repaints - before_repaints
        assert 1 <= flushes <= bursts  # never one flush per write
        assert 1 <= repaints <= flushes  # at most one repaint per flush, and the last one was drawn
        await wait_for(pilot, lambda: f"line {n - 1}" in rendered_text(term), what="the last line painted")
        shown = rendered_text(term).split()
        assert f"line {n - 2}" in rendered_text(term) and "0" not in shown  # the early lines scrolled off


async def test_rendered_cells_carry_colours_attributes_and_cursor():
    app = TerminalTestApp(None)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()
        term._on_output("\x1b[1;31mred\x1b[0m \x1b[38;2;1;2;3;48;5;21mrgb\x1b[0m 中x\r\n\x1b[4 q>".encode())
        await wait_for(pilot, lambda: ">" in rendered_text(term), what="output")
        segments = list(term.render_line(0))
        red = next(s for s in segments if s.text == "red")
        assert red.style.bold and red.style.color.number == 1
        rgb = next(s for s in segments if s.text == "rgb")
        assert rgb.style.color.triplet == (1, 2, 3) and rgb.style.bgcolor.triplet is not None
        assert term.render_line(0).text.startswith("red rgb 中x")
        assert term.render_line(0).cell_length == term.size.width
        cursor_cell = [s for s in term.render_line(1) if s.text][1]  # after ">"
        assert cursor_cell.style.underline  # DECSCUSR 4: underline cursor, drawn while focused


async def test_the_echo_of_a_typed_key_is_not_held_back_by_the_frame_cap():
    """Output is painted at most MAX_FPS times a second, except the first output after a
    key was typed: that echo is painted in the flush that takes it in."""
    app = TerminalTestApp(None)
    async with app.run_test(size=(60, 20)) as pilot:
        term = app.query_one(Terminal)
        await pilot.pause()

        def flush_now(data: bytes) -> None:
            term._on_output(data)
            term._flush_handle.cancel()
            term._flush()

        term._last_repaint = time.monotonic() + 3600  # a frame was "just" painted: the cap holds
        repaints = term.repaints
        flush_now(b"program output")
        assert term.repaints == repaints and term._frame_due  # held for the next frame
        term.send(b"k")  # no session here: nothing is written, but a key was typed
        flush_now(b"k")
        assert term.repaints == repaints + 1 and not term._frame_due  # painted at once
        flush_now(b" more output")
        assert term.repaints == repaints + 1  # only the echo: the cap holds again
        term._flush_handle.cancel()
        term._flush_handle = None
