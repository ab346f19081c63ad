"""AgentFolder, the one home of host-side file operations in folders an agent can write.

Each test plays the agent with plain file operations on the host folder (what an agent
does from inside its container lands there) and checks that crowdtui never follows,
reads, writes, chmods or chowns what the agent placed. The same attacks from inside real
containers are in test_agent_folders.py.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from crowdtui.agent_folder import AgentFolder, UnsafeEntry, agent_owner, finding_event


@pytest.fixture
def host_secret(tmp_path):
    """A root-only host file the agent wants: content, owner and mode must never change."""
    secret = tmp_path / "host" / "secret.json"
    secret.parent.mkdir()
    secret.write_text('{"auths": {"registry": "s3cr3t"}}')
    os.chmod(secret, 0o600)
    return secret


def snapshot(path):
    st = os.lstat(path)
    return path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def home(tmp_path):
    root = tmp_path / "homes" / "mole"
    root.mkdir(parents=True)
    return AgentFolder(root, agent="mole", label="home")


def test_read_refuses_a_link_and_reports_it(home, host_secret):
    (home.root / ".mcp.json").symlink_to(host_secret)
    with pytest.raises(UnsafeEntry, match="symbolic link"):
        home.read(".mcp.json")
    assert [(f.path, f.found, f.action) for f in home.findings] == [(".mcp.json", "a symbolic link", "ignored")]
    kind, subject, detail = finding_event(home.findings[0])
    assert (kind, subject, detail["folder"]) == ("agent.unsafe_file", "mole", "home")


def test_read_refuses_a_link_in_a_parent_folder(home, host_secret):
    (home.root / ".claude").symlink_to(host_secret.parent)
    with pytest.raises(UnsafeEntry, match="not a folder|symbolic link"):
        home.read(".claude/secret.json")


def test_read_refuses_fifos_folders_hard_links_and_oversized_files_without_blocking(home, tmp_path):
    os.mkfifo(home.root / "fifo")
    (home.root / "dir").mkdir()
    (home.root / "big").write_bytes(b"x" * 2000)
    outside = tmp_path / "outside"
    outside.write_text("mine")
    os.link(outside, home.root / "hard")
    for name, found in [("fifo", "FIFO"), ("dir", "directory"), ("big", "2000 bytes"), ("hard", "hard links")]:
        with pytest.raises(UnsafeEntry, match=found):
            home.read(name, max_bytes=1000)
    assert home.read("missing") is None
    (home.root / "ok").write_text("fine")
    assert home.read("ok") == b"fine"


def test_write_replaces_a_link_and_never_touches_its_target(home, host_secret):
    before = snapshot(host_secret)
    (home.root / ".mcp.json").symlink_to(host_secret)
    home.write(".mcp.json", '{"mcpServers": {}}')
    assert snapshot(host_secret) == before
    path = home.root / ".mcp.json"
    assert not path.is_symlink() and path.read_text() == '{"mcpServers": {}}'
    st = path.lstat()
    assert stat.S_IMODE(st.st_mode) == 0o644
    if agent_owner():
        assert (st.st_uid, st.st_gid) == agent_owner()
    assert (".mcp.json", "a symbolic link", "replaced") in [(f.path, f.found, f.action) for f in home.findings]


def test_write_ignores_a_planted_temporary_link_and_removes_it(home, host_secret):
    before = snapshot(host_secret)
    for planted in (".mcp.json.tmp", "..mcp.json.crowd-000000000000.tmp"):
        (home.root / planted).symlink_to(host_secret)
    home.write(".mcp.json", "{}")
    assert snapshot(host_secret) == before
    assert not os.path.lexists(home.root / ".mcp.json.tmp")
    removed = {f.path for f in home.findings if f.action == "removed"}
    assert ".mcp.json.tmp" in removed


def test_write_moves_a_folder_aside(home):
    (home.root / "settings.json").mkdir()
    (home.root / "settings.json" / "keep").write_text("agent data")
    home.write("settings.json", "{}")
    assert (home.root / "settings.json").read_text() == "{}"
    [aside] = [p for p in home.root.iterdir() if p.name.startswith("settings.json.moved-aside-")]
    assert (aside / "keep").read_text() == "agent data"


def test_nested_write_through_a_linked_folder_makes_a_real_folder(home, host_secret):
    before = snapshot(host_secret)
    listing = sorted(os.listdir(host_secret.parent))
    (home.root / ".codex").symlink_to(host_secret.parent)
    home.write(".codex/config.toml", "[mcp_servers.crowd]\n")
    assert sorted(os.listdir(host_secret.parent)) == listing and snapshot(host_secret) == before
    assert (home.root / ".codex").is_dir() and not (home.root / ".codex").is_symlink()
    assert (home.root / ".codex" / "config.toml").read_text() == "[mcp_servers.crowd]\n"


def test_ensure_dir_and_file_replace_links_and_chown_only_what_is_inside(home, host_secret, tmp_path):
    target_dir = tmp_path / "hostdir"
    target_dir.mkdir(mode=0o700)
    dir_before = os.lstat(target_dir)
    (home.root / ".claude").symlink_to(target_dir)
    (home.root / "CLAUDE.md").symlink_to(host_secret)
    before = snapshot(host_secret)
    home.ensure_dir(".claude/skills")
    home.ensure_file("CLAUDE.md")
    after = os.lstat(target_dir)
    assert (after.st_uid, after.st_gid, after.st_mode) == (dir_before.st_uid, dir_before.st_gid, dir_before.st_mode)
    assert os.listdir(target_dir) == [] and snapshot(host_secret) == before
    assert (home.root / ".claude" / "skills").is_dir() and (home.root / "CLAUDE.md").read_text() == ""
    assert {f.path for f in home.findings} == {".claude", "CLAUDE.md"}


def test_paths_cannot_leave_the_folder(home):
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError):
            home.write(bad, "x")


def test_bind_socket_sets_owner_and_mode_before_it_appears_and_replaces_a_link(tmp_path, host_secret):
    ipc = AgentFolder(tmp_path / "ipc" / "mole", agent="mole", label="ipc")
    ipc.ensure_dir("")
    before = snapshot(host_secret)
    (ipc.root / "mcp.sock").symlink_to(host_secret)
    sock = ipc.bind_socket("mcp.sock")
    try:
        st = os.lstat(ipc.root / "mcp.sock")
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        if agent_owner():
            assert (st.st_uid, st.st_gid) == agent_owner()
        assert snapshot(host_secret) == before
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(ipc.root / "mcp.sock"))  # the renamed socket still answers
        assert [(f.path, f.action) for f in ipc.findings] == [("mcp.sock", "replaced")]
        staging = tmp_path / "ipc" / ".staging"
        assert stat.S_IMODE(os.lstat(staging).st_mode) == 0o700 and os.listdir(staging) == []
    finally:
        sock.close()
    assert ipc.unlink("mcp.sock") and not os.path.lexists(ipc.root / "mcp.sock")


def test_bind_socket_with_a_long_path(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "ipc" / "mole"
    ipc = AgentFolder(deep, agent="mole", label="ipc")
    ipc.ensure_dir("")
    sock = ipc.bind_socket("mcp.sock")
    sock.close()
    assert stat.S_ISSOCK(os.lstat(deep / "mcp.sock").st_mode)


def test_unlink_removes_a_link_not_its_target(tmp_path, host_secret):
    ipc = AgentFolder(tmp_path / "ipc" / "mole", agent="mole")
    ipc.ensure_dir("")
    (ipc.root / "secrets.sock").symlink_to(host_secret)
    before = snapshot(host_secret)
    assert ipc.unlink("secrets.sock")
    assert snapshot(host_secret) == before and not os.path.lexists(ipc.root / "secrets.sock")
    (ipc.root / "dir.sock").mkdir()
    assert ipc.unlink("dir.sock") is False
