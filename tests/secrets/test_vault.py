"""Secrets at rest: encrypted, never shown, never in the database or events in plain text."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from crowdtui.secrets import SecretError, Vault, key_file_path, load_key

VALUE = "s3cr3t-Value-\u00e9-7d1f0c9a"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CROWD_SECRET_KEY", raising=False)
    return {**os.environ}


def cli(ws, *args, stdin="", env=None):
    return subprocess.run(
        [sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=60,
    )


def test_set_from_stdin_is_encrypted_and_never_shown(workspace, env):
    out = cli(workspace, "secret", "set", "API_TOKEN", stdin=VALUE + "\n", env=env)
    assert out.returncode == 0, out.stderr
    assert VALUE not in out.stdout + out.stderr
    ls = cli(workspace, "secret", "ls", env=env)
    assert "API_TOKEN" in ls.stdout and VALUE not in ls.stdout
    events = cli(workspace, "events", "--json", env=env)
    assert events.returncode == 0, events.stderr
    assert "API_TOKEN" in events.stdout and VALUE not in events.stdout
    # a byte search of the database files finds neither the value nor its UTF-8 bytes
    for f in workspace.crowd_dir.glob("crowd.db*"):
        assert VALUE.encode() not in f.read_bytes(), f
    # the key file is private and lives outside the workspace
    key = key_file_path(workspace)
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert workspace.root not in key.parents


async def test_reveal_round_trip_and_overwrite(workspace, env):
    from qms import Store

    store = await Store.open(workspace.db_path)
    try:
        vault = Vault.open(workspace, store)
        await vault.set("A_KEY", VALUE)
        assert await vault.reveal(["A_KEY"]) == {"A_KEY": VALUE}
        await vault.set("A_KEY", "second")
        assert await vault.reveal(["A_KEY"]) == {"A_KEY": "second"}
        assert [n for n, _ in await vault.names()] == ["A_KEY"]
        with pytest.raises(SecretError, match="not set"):
            await vault.reveal(["MISSING"])
        await vault.remove("A_KEY")
        assert await vault.names() == []
        with pytest.raises(SecretError, match="no secret named"):
            await vault.remove("A_KEY")
    finally:
        await store.close()


async def test_wrong_key_says_so(workspace, env, monkeypatch):
    from qms import Store

    store = await Store.open(workspace.db_path)
    try:
        await Vault.open(workspace, store).set("T", VALUE)
        monkeypatch.setenv("CROWD_SECRET_KEY", "ab" * 32)
        with pytest.raises(SecretError, match="does not decrypt"):
            await Vault.open(workspace, store).reveal(["T"])
    finally:
        await store.close()


@pytest.mark.parametrize("name", ["lower", "1ABC", "A-B", "../X", "A\x1b[2J", "", "X" * 65])
def test_bad_names_refused_and_nothing_stored(workspace, env, name):
    out = cli(workspace, "secret", "set", name, stdin="v", env=env)
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and "secret name" in out.stderr
    assert "no secrets" in cli(workspace, "secret", "ls", env=env).stdout


def test_value_cannot_be_an_argument(workspace, env):
    out = cli(workspace, "secret", "set", "TOKEN", "the-value", env=env)
    assert out.returncode != 0
    assert "no secrets" in cli(workspace, "secret", "ls", env=env).stdout


def test_empty_value_refused(workspace, env):
    out = cli(workspace, "secret", "set", "TOKEN", stdin="", env=env)
    assert out.returncode != 0 and "empty" in out.stderr


def test_key_from_environment_and_bad_key(workspace, env, monkeypatch):
    monkeypatch.setenv("CROWD_SECRET_KEY", "00" * 32)
    assert load_key(workspace) == bytes(32)
    assert not key_file_path(workspace).exists()
    monkeypatch.setenv("CROWD_SECRET_KEY", "short")
    with pytest.raises(SecretError, match="32 bytes"):
        load_key(workspace)


def test_loose_key_file_mode_refused(workspace, env):
    load_key(workspace)
    path = key_file_path(workspace)
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        load_key(workspace)


async def test_hostile_names_and_values_are_refused_in_one_line(workspace, env):
    from qms import Store

    store = await Store.open(workspace.db_path)
    try:
        vault = Vault.open(workspace, store)
        for name in ["../KEY", "a", "KEY=1", "KEY\x00", "K" * 65, "", "KEY\n", "\x1b[2J"]:
            with pytest.raises(SecretError) as err:
                await vault.set(name, "v")
            assert "\n" not in str(err.value)
        for value, says in [("a\x00b", "NUL byte"), ("x" * (64 * 1024 + 1), "the limit is"), ("", "is empty")]:
            with pytest.raises(SecretError, match=says):
                await vault.set("GOOD_NAME", value)
        assert await vault.names() == []
        await vault.set("GOOD_NAME", "line1\nline2 = \u2603")  # newlines and '=' are fine in a value
        assert await vault.reveal(["GOOD_NAME"]) == {"GOOD_NAME": "line1\nline2 = \u2603"}
    finally:
        await store.close()


def test_cli_refuses_a_hostile_name_before_reading_anything(workspace, env):
    out = cli(workspace, "secret", "set", "../../KEY", stdin="should-not-be-read\n", env=env)
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1
    assert "bad secret name" in out.stderr and "should-not-be-read" not in out.stdout + out.stderr
    assert not key_file_path(workspace).exists()  # nothing was created, not even the key
