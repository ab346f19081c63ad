"""Workspace discovery and `crowdtui init`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crowdtui.errors import WorkspaceNotFound
from crowdtui.workspace import find_workspace, init_workspace

CLI = [sys.executable, "-m", "crowdtui"]


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def test_init_creates_config_roster_and_state(tmp_path):
    out = run_cli("init", str(tmp_path / "w"))
    assert out.returncode == 0, out.stderr
    root = tmp_path / "w"
    assert (root / "crowd.toml").is_file()
    assert (root / "agents").is_dir()
    assert any((root / "agents").rglob("AGENT.md")), "sample roster was copied"
    assert (root / ".crowd" / "crowd.db").is_file()
    assert "initialised workspace" in out.stdout


def test_init_is_idempotent_and_keeps_edits(tmp_path):
    root = tmp_path / "w"
    assert run_cli("init", str(root)).returncode == 0
    (root / "crowd.toml").write_text('[workspace]\nname = "mine"\n')
    again = run_cli("init", str(root))
    assert again.returncode == 0
    assert "already initialised" in again.stdout
    assert 'name = "mine"' in (root / "crowd.toml").read_text()


def test_find_from_subfolder_env_and_flag(tmp_path, monkeypatch):
    ws, _ = init_workspace(tmp_path / "w", sample=False)
    deep = ws.root / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv("CROWD_WORKSPACE", raising=False)
    assert find_workspace(cwd=deep).root == ws.root
    monkeypatch.setenv("CROWD_WORKSPACE", str(ws.root))
    assert find_workspace(cwd=tmp_path).root == ws.root
    other, _ = init_workspace(tmp_path / "other", sample=False)
    assert find_workspace(str(other.root), cwd=deep).root == other.root


def test_no_workspace_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CROWD_WORKSPACE", raising=False)
    with pytest.raises(WorkspaceNotFound, match="crowdtui init"):
        find_workspace(cwd=tmp_path)
    env = {k: v for k, v in __import__("os").environ.items() if k != "CROWD_WORKSPACE"}
    out = run_cli("inbox", cwd=tmp_path, env=env)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "crowdtui init" in lines[0], out.stderr


def test_broken_config_is_reported(tmp_path):
    root = tmp_path / "w"
    root.mkdir()
    (root / "crowd.toml").write_text("[workspace\nname=")
    with pytest.raises(WorkspaceNotFound, match="crowd.toml"):
        find_workspace(str(root))


def test_workspace_ids_differ_per_folder(tmp_path):
    a, _ = init_workspace(tmp_path / "a", sample=False)
    b, _ = init_workspace(tmp_path / "b", sample=False)
    assert a.id != b.id and len(a.id) == 12
    assert a.home_dir("lead") == a.root / ".crowd" / "homes" / "lead"
    assert a.ipc_dir("lead") == a.root / ".crowd" / "ipc" / "lead"


def test_init_without_the_sample_roster_says_so(tmp_path, monkeypatch):
    import crowdtui.workspace as wsmod

    monkeypatch.setattr(wsmod, "sample_roster_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(WorkspaceNotFound, match="init --empty"):
        init_workspace(tmp_path / "w", sample=True)
    ws, created = init_workspace(tmp_path / "w", sample=False)
    assert "agents/" in created and not any(ws.agents_dir.iterdir())
