"""The crowdtui entry point: its error lines are inert (no terminal control reaches the
operator's screen), and `--serve` is the serve command only among the global options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crowdtui.cli import main, rewrite_serve

CROWDTUI = Path(sys.executable).parent / "crowdtui"
HOSTILE_DIR = "/nonexistent/\x1b]0;pwned\x07\x1b]52;c;cHduZWQ=\x07\u202eevil\u200b\x9b2J"
UNSAFE = ["\x1b", "\x07", "\x9b", "\u202e", "\u200b"]


def assert_inert(err: str) -> None:
    for ch in UNSAFE:
        assert ch not in err, repr(ch)
    assert "\\x1b]0;pwned\\x07" in err and "\\u202eevil\\u200b\\x9b2J" in err  # shown, not dropped


def test_a_cli_error_is_printed_inert(capsys):
    assert main(["-w", HOSTILE_DIR, "inbox"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("crowdtui: ")
    assert_inert(err)


def test_a_cli_error_is_inert_on_the_real_stderr(tmp_path):
    proc = subprocess.run([str(CROWDTUI), "-w", HOSTILE_DIR, "ls"], capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1
    assert_inert(proc.stderr.decode())


@pytest.mark.parametrize("argv, expected", [
    (["--serve"], ["serve"]),
    (["--serve", "--port", "8080"], ["serve", "--port", "8080"]),
    (["-w", "ws", "--as", "lead", "--serve"], ["-w", "ws", "--as", "lead", "serve"]),
    (["--workspace=ws", "-wws", "--as=lead", "--serve"], ["--workspace=ws", "-wws", "--as=lead", "serve"]),
    (["send", "lead", "--", "--serve"], ["send", "lead", "--", "--serve"]),
    (["send", "lead", "--serve"], ["send", "lead", "--serve"]),
    (["-w", "ws", "send", "lead", "--serve"], ["-w", "ws", "send", "lead", "--serve"]),
    (["-w", "--serve", "ls"], ["-w", "--serve", "ls"]),  # a folder named --serve
    (["--as", "--serve", "ls"], ["--as", "--serve", "ls"]),
    (["--", "--serve"], ["--", "--serve"]),
])
def test_serve_is_rewritten_only_among_the_global_options(argv, expected):
    assert rewrite_serve(argv) == expected


def test_a_message_body_of_serve_is_sent_not_served(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["init", str(ws)]) == 0
    capsys.readouterr()
    assert main(["-w", str(ws), "send", "lead", "--", "--serve"]) == 0
    capsys.readouterr()
    assert main(["-w", str(ws), "--as", "lead", "inbox", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"body": "--serve"' in out


def test_the_global_serve_flag_still_runs_serve(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-w", str(tmp_path), "--serve", "--help"])
    assert exit_.value.code == 0
    assert "usage: crowdtui serve" in capsys.readouterr().out


def test_one_inert_for_the_cli_the_local_channel_and_the_console():
    from crowdtui.cli import common
    from crowdtui.dispatch import local_channel
    from crowdtui.text_safety import inert
    from crowdtui.tui import text

    assert common.inert is inert and local_channel.inert is inert
    hostile = "a\x1b[2Jb\tc\nd\u202ee\u2066f\u200bg\x7f\x85"
    assert inert(hostile) == "a\\x1b[2Jb\tc\nd\\u202ee\\u2066f\\u200bg\\x7f\\x85"
    assert inert(hostile, multiline=False) == "a\\x1b[2Jb\tc⏎d\\u202ee\\u2066f\\u200bg\\x7f\\x85"
    assert text.inert(hostile) == "a\\x1b[2Jb    c⏎d\\u202ee\\u2066f\\u200bg\\x7f\\x85"
