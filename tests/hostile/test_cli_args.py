"""Hostile names and ids on the command line: one clear stderr line, a non-zero exit, and the
store (and the file system around the workspace) exactly as before."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

TRAVERSE = "../../../tmp/crowd-evil"
ESC = "a\x1b[2Jb"
HUGE = "x" * 100_000

CASES = [
    ("send", TRAVERSE, "hi"),
    ("send", ESC, "hi"),
    ("send", "lead", HUGE),  # over the message limit
    ("inbox", TRAVERSE),
    ("read", "-1"),
    ("read", "not-a-number"),
    ("read", "99999999999999999999999"),
    ("doc", "show", TRAVERSE),
    ("doc", "show", "SOP-001/../../x"),
    ("doc", "checkout", "SOP-999"),
    ("doc", "new", "../SOP", "title"),
    ("doc", "new", "SOP", HUGE),
    ("doc", "history", ESC),
    ("up", TRAVERSE),
    ("down", ESC),
    ("logs", "operator"),
    ("secret", "set", "../KEY"),
    ("secret", "rm", ESC),
    ("token", "issue", TRAVERSE),
    ("--as", TRAVERSE, "send", "lead", "hi"),
    ("--as", "*", "send", "lead", "hi"),
]


def snapshot(db) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def files(root) -> set[str]:
    return {os.path.join(d, n) for d, _, names in os.walk(root) for n in names}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One workspace for every case (each case checks it is unchanged): an agent, a message, a document."""
    from crowdtui.workspace import init_workspace

    base = tmp_path_factory.mktemp("hostile-cli")
    ws, _ = init_workspace(base / "ws", sample=False)
    env = {**os.environ, "XDG_CONFIG_HOME": str(base / "config"), "CROWD_SECRET_KEY": "44" * 32}
    env.pop("CROWD_WORKSPACE", None)
    (ws.agents_dir / "lead").mkdir(parents=True, exist_ok=True)
    (ws.agents_dir / "lead" / "AGENT.md").write_text("---\nname: lead\n---\nLeads.\n")
    for args in (["send", "lead", "keep me"], ["doc", "new", "SOP", "Precious"]):
        out = run(ws, *args, env=env)
        assert out.returncode == 0, out.stderr
    return ws, env


def run(ws, *args, env=None, stdin="value\n"):
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          input=stdin.encode(), capture_output=True, env=env, timeout=60)


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(x[:20].encode("unicode_escape").decode() for x in a))
def test_hostile_cli_arguments_fail_clearly_and_change_nothing(seeded, args):
    workspace, env = seeded
    before = snapshot(workspace.db_path)
    tree = files(workspace.root.parent)
    out = run(workspace, *args, env=env)
    err = out.stderr.decode("utf-8", "replace")
    assert out.returncode != 0, (args, out.stdout[:300])
    lines = err.strip().splitlines()
    if out.returncode == 2 and lines and lines[0].startswith("usage:"):
        lines = lines[1:]  # argparse's own refusal: the usage, then one line saying what was wrong
    assert len(lines) == 1 and "Traceback" not in err, err[:2000]
    assert len(lines[0]) < 600, lines[0][:300]
    assert "\x1b" not in err  # hostile text is shown escaped, never as terminal control
    assert snapshot(workspace.db_path) == before
    new = {f for f in files(workspace.root.parent) - tree if "/.crowd/" not in f}
    assert not new, new
    assert not os.path.exists("/tmp/crowd-evil")
