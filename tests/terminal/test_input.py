"""Keys, mouse and paste: encodings, and end to end through a real PTY to a program."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual import events

from crowdtui.terminal import encode_key, encode_mouse
from crowdtui.tui.widgets.terminal import Terminal

from .app import TerminalTestApp
from .local_pty import LocalPtySession
from .test_widget import screen_text, wait_for

KEYECHO = str(Path(__file__).resolve().parent / "keyecho.py")


@pytest.mark.parametrize(
    "key, char, app_cursor, expected",
    [
        ("a", "a", False, b"a"),
        ("A", "A", False, b"A"),
        ("é", "é", False, "é".encode()),
        ("space", " ", False, b" "),
        ("enter", "\r", False, b"\r"),
        ("tab", "\t", False, b"\t"),
        ("shift+tab", None, False, b"\x1b[Z"),
        ("backspace", "\x7f", False, b"\x7f"),
        ("escape", "\x1b", False, b"\x1b"),
        ("up", None, False, b"\x1b[A"),
        ("up", None, True, b"\x1bOA"),
        ("left", None, True, b"\x1bOD"),
        ("shift+up", None, True, b"\x1b[1;2A"),
        ("ctrl+right", None, False, b"\x1b[1;5C"),
        ("home", None, False, b"\x1b[H"),
        ("end", None, True, b"\x1bOF"),
        ("insert", None, False, b"\x1b[2~"),
        ("delete", None, False, b"\x1b[3~"),
        ("pageup", None, False, b"\x1b[5~"),
        ("pagedown", None, False, b"\x1b[6~"),
        ("ctrl+pageup", None, False, b"\x1b[5;5~"),
        ("f1", None, False, b"\x1bOP"),
        ("f4", None, False, b"\x1bOS"),
        ("shift+f3", None, False, b"\x1b[1;2R"),
        ("f5", None, False, b"\x1b[15~"),
        ("f12", None, False, b"\x1b[24~"),
        ("ctrl+a", "\x01", False, b"\x01"),
        ("ctrl+c", "\x03", False, b"\x03"),
        ("ctrl+z", None, False, b"\x1a"),
        ("ctrl+space", None, False, b"\x00"),
        ("ctrl+backslash", None, False, b"\x1c"),
        ("alt+x", "x", False, b"\x1bx"),
        ("alt+shift+x", "X", False, b"\x1bX"),
        ("alt+enter", None, False, b"\x1b\r"),
        ("ctrl+alt+a", None, False, b"\x1b\x01"),
        ("alt+up", None, False, b"\x1b[1;3A"),
    ],
)
def test_key_encoding(key, char, app_cursor, expected):
    assert encode_key(key, char, application_cursor=app_cursor) == expected


def test_unknown_key_sends_nothing():
    assert encode_key("<ignore>", None) is None
    assert encode_key("ctrl+f13", None) is None


@pytest.mark.parametrize(
    "kind, button, tracking, encoding, expected",
    [
        ("press", 1, "normal", "sgr", b"\x1b[<0;4;3M"),
        ("release", 1, "normal", "sgr", b"\x1b[<0;4;3m"),
        ("press", 3, "normal", "sgr", b"\x1b[<2;4;3M"),
        ("wheel_up", 0, "normal", "sgr", b"\x1b[<64;4;3M"),
        ("wheel_down", 0, "normal", "x10", b"\x1b[M" + bytes([32 + 65, 36, 35])),
        ("press", 1, "normal", "x10", b"\x1b[M" + bytes([32, 36, 35])),
        ("release", 1, "normal", "x10", b"\x1b[M" + bytes([35, 36, 35])),
        ("press", 1, "normal", "urxvt", b"\x1b[32;4;3M"),
        ("motion", 1, "normal", "sgr", None),
        ("motion", 1, "button", "sgr", b"\x1b[<32;4;3M"),
        ("motion", 0, "button", "sgr", None),
        ("motion", 0, "any", "sgr", b"\x1b[<35;4;3M"),
        ("release", 1, "x10", "x10", None),
        ("press", 1, "", "sgr", None),
    ],
)
def test_mouse_encoding(kind, button, tracking, encoding, expected):
    assert encode_mouse(kind, 3, 2, button=button, tracking=tracking, encoding=encoding) == expected


def test_mouse_modifiers_and_far_cells():
    assert encode_mouse("press", 0, 0, button=1, ctrl=True, shift=True, tracking="normal", encoding="sgr") == b"\x1b[<20;1;1M"
    assert encode_mouse("press", 300, 0, button=1, tracking="normal", encoding="x10") is None
    assert encode_mouse("press", 300, 0, button=1, tracking="normal", encoding="sgr") == b"\x1b[<0;301;1M"


async def _received(pilot, term: Terminal, expected: bytes) -> None:
    await wait_for(pilot, lambda: f"IN {expected.hex()}" in screen_text(term).replace("\n", ""),
                   what=f"the program to receive {expected!r}")


@pytest.fixture
def keyecho_factory():
    sessions = []

    def make(*modes: str) -> LocalPtySession:
        session = LocalPtySession([sys.executable, KEYECHO, *modes], rows=30, cols=120)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


async def test_keys_reach_program_as_bytes(keyecho_factory):
    app = TerminalTestApp(keyecho_factory())
    async with app.run_test(size=(120, 40)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "READY" in screen_text(term), what="the program")
        for key, expected in [("x", b"x"), ("up", b"\x1b[A"), ("f5", b"\x1b[15~"), ("ctrl+a", b"\x01"),
                              ("tab", b"\t"), ("shift+tab", b"\x1b[Z"), ("ctrl+c", b"\x03"),
                              ("escape", b"\x1b"), ("delete", b"\x1b[3~")]:
            await pilot.press(key)
            await _received(pilot, term, expected)


async def test_application_cursor_mouse_and_bracketed_paste(keyecho_factory):
    app = TerminalTestApp(keyecho_factory("appcursor", "mouse", "paste"))
    async with app.run_test(size=(120, 40)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "READY" in screen_text(term), what="the program")
        assert term.emulator.application_cursor and term.emulator.bracketed_paste
        assert term.emulator.mouse_tracking == "normal" and term.emulator.mouse_encoding == "sgr"
        await pilot.press("up")
        await _received(pilot, term, b"\x1bOA")
        await pilot.click(Terminal, offset=(6, 4))  # widget offset; the border takes one cell
        await _received(pilot, term, b"\x1b[<0;6;4M")
        term.post_message(events.Paste("two\nlines"))
        await _received(pilot, term, b"\x1b[200~two\rlines\x1b[201~")


async def test_paste_without_bracketed_mode_is_plain(keyecho_factory):
    app = TerminalTestApp(keyecho_factory())
    async with app.run_test(size=(120, 40)) as pilot:
        term = app.query_one(Terminal)
        await wait_for(pilot, lambda: "READY" in screen_text(term), what="the program")
        term.post_message(events.Paste("ls -l"))
        await _received(pilot, term, b"ls -l")
