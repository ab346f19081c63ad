"""Secrets reach the agent's process, and nothing else: not inspect, events, logs, the database."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crowdtui.roster import AgentDef
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.secrets_handoff import HandoffFailed, SecretHandoff

pytestmark = pytest.mark.docker

VALUE = "tok-\u00e9-" + "7c4e1a9b2f" * 3  # recognisable, non-ASCII too
DIGEST = hashlib.sha256(VALUE.encode()).hexdigest()

# The agent's command: proves what its own environment holds (a hash, never the value), then waits.
SHOW = 'printf "env-hash=%s\\n" "$(printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1)"; exec sleep infinity'

# Inside a container: the environment of the process running `sleep infinity` (the agent's command).
READ_ENV = (
    "for d in /proc/[0-9]*; do "
    "  if tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -q '^sleep infinity'; then "
    "    tr '\\0' '\\n' < $d/environ; fi; done"
)


def agent(ws, name, command=("bash", "-c", SHOW), **fields) -> AgentDef:
    return AgentDef(name=name, file=Path(ws.agents_dir) / name / "AGENT.md", rel_path=name, tier=0,
                    command=tuple(command) if command else None, **fields)


@pytest.fixture
def env(workspace, tmp_path, monkeypatch):
    """Key file in a private config folder, as a user would have it (no key in the environment)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("CROWD_SECRET_KEY", raising=False)
    return {**os.environ}


def cli(ws, *args, stdin="", env=None):
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=60)


def exec_as_agent(container, script: str) -> str:
    code, out = container.exec_run(["bash", "-c", script], user="1000:1000")
    return out.decode("utf-8", "replace")


async def _wait_logs(container, needle: str, timeout: float = 20.0) -> str:
    import asyncio
    import time

    end = time.monotonic() + timeout
    while True:
        out = container.logs().decode("utf-8", "replace")
        if needle in out or time.monotonic() > end:
            return out
        await asyncio.sleep(0.1)


async def test_secret_from_stdin_reaches_only_the_agent_process(workspace, env, docker_client, agent_image):
    from qms import Store

    out = cli(workspace, "secret", "set", "API_TOKEN", stdin=VALUE + "\n", env=env)
    assert out.returncode == 0, out.stderr
    store = await Store.open(workspace.db_path)
    runtime = Runtime(workspace, docker_client, store=store)
    try:
        info = await runtime.start(agent(workspace, "alpha", secrets=("API_TOKEN",)))
        other = await runtime.start(agent(workspace, "beta"))  # no secrets named
        alpha = docker_client.containers.get(info.container_id)
        beta = docker_client.containers.get(other.container_id)

        # the agent's command saw the value (it prints only its hash)
        logs = await _wait_logs(alpha, "env-hash=")
        assert f"env-hash={DIGEST}" in logs
        # ... and so does its process, read from inside the container as the agent user
        assert f"API_TOKEN={VALUE}" in exec_as_agent(alpha, READ_ENV)
        # a fresh `docker exec` session is not the agent's process: it does not get it
        assert VALUE not in exec_as_agent(alpha, "env")
        # the other agent: not in any of its processes, and alpha's socket is not there
        assert VALUE not in exec_as_agent(beta, "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'")
        assert "API_TOKEN" not in exec_as_agent(beta, READ_ENV)
        # the one-shot socket is gone on the host and in the container
        assert not (workspace.ipc_dir("alpha") / "secrets.sock").exists()
        assert "gone" in exec_as_agent(alpha, "test -e /run/crowd/secrets.sock && echo there || echo gone")

        # nowhere else in plain text
        inspect = json.dumps(docker_client.api.inspect_container(info.container_id))
        assert VALUE not in inspect and "API_TOKEN" in inspect  # the name only (CROWD_SECRETS)
        assert VALUE not in json.dumps([e.detail for e in await store.events_after(0)])
        assert VALUE not in alpha.logs().decode("utf-8", "replace")
        for f in workspace.crowd_dir.rglob("*"):
            if f.is_file():
                assert VALUE.encode() not in f.read_bytes(), f
        image = docker_client.images.get(alpha.attrs["Config"]["Image"])
        assert VALUE not in json.dumps(image.attrs)

        # a restart hands the secret over again
        again = await runtime.restart(agent(workspace, "alpha", secrets=("API_TOKEN",)))
        assert again.container_id != info.container_id
        fresh = docker_client.containers.get(again.container_id)
        assert f"env-hash={DIGEST}" in await _wait_logs(fresh, "env-hash=")
    finally:
        await store.close()


async def test_default_command_runs_through_crowd_entry_with_the_secret(workspace, env, docker_client,
                                                                       agent_image, monkeypatch):
    """No command in the definition: the image's own command (crowd-agent) is what gets exec'd."""
    from qms import Store

    monkeypatch.setenv("CROWD_SECRET_KEY", "22" * 32)
    store = await Store.open(workspace.db_path)
    try:
        from crowdtui.secrets import Vault

        await Vault.open(workspace, store).set("API_TOKEN", VALUE)
        runtime = Runtime(workspace, docker_client, store=store)
        info = await runtime.start(agent(workspace, "alpha", command=None, secrets=("API_TOKEN",)))
        c = docker_client.containers.get(info.container_id)
        image_cmd = docker_client.images.get(c.attrs["Config"]["Image"]).attrs["Config"]["Cmd"]
        assert c.attrs["Config"]["Cmd"] == ["crowd-entry", *image_cmd]
        assert c.status == "running"
        pids = exec_as_agent(c, "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline; echo; done")
        lines = pids.splitlines()
        assert any(line.startswith("python3 /usr/local/bin/crowd-agent") for line in lines), pids
        # it exec'd: no crowd-entry process stays around (tini's own arguments still name it)
        assert not any(line.startswith("python3 /usr/local/bin/crowd-entry") for line in lines), pids
        agent_env = exec_as_agent(c, "for d in /proc/[0-9]*; do if grep -q crowd-agent $d/cmdline; then "
                                     "tr '\\0' '\\n' < $d/environ; fi; done 2>/dev/null")
        assert f"API_TOKEN={VALUE}" in agent_env
    finally:
        await store.close()


async def test_missing_secret_starts_nothing(workspace, env, docker_client, agent_image, monkeypatch):
    from crowdtui.runtime import labels
    from crowdtui.secrets import SecretError

    monkeypatch.setenv("CROWD_SECRET_KEY", "33" * 32)
    runtime = Runtime(workspace, docker_client)
    with pytest.raises(SecretError, match="API_TOKEN is not set"):
        await runtime.start(agent(workspace, "alpha", secrets=("API_TOKEN",)))
    assert not docker_client.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={workspace.id}"})


async def test_image_without_crowd_entry_is_a_clear_error_and_leaves_no_container(
        workspace, env, docker_client, agent_image):
    """A command that never takes its secrets: start fails with a line naming the cause, no container stays."""
    from crowdtui.runtime import labels

    import io

    tag = f"crowdtui-test-no-entry:{workspace.id}"
    dockerfile = f"FROM {agent_image}\nUSER root\nRUN rm /usr/local/bin/crowd-entry\nUSER agent\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        runtime = Runtime(workspace, docker_client)
        bad = agent(workspace, "alpha", image=tag, secrets=("API_TOKEN",))
        with pytest.raises(HandoffFailed, match="stopped before taking its secrets") as err:
            await runtime.start(bad, secrets={"API_TOKEN": VALUE})
        assert "\n" not in str(err.value) and VALUE not in str(err.value)
    finally:
        docker_client.images.remove(tag, force=True)
    assert not docker_client.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={workspace.id}"})
    assert not (workspace.ipc_dir("alpha") / "secrets.sock").exists()


def test_handoff_serves_once_then_the_socket_is_gone(tmp_path):
    """Host side alone: the first connection from the container gets the secrets; then nothing is there."""
    import threading

    h = SecretHandoff(tmp_path, {"A": VALUE}, agent="alpha")
    path = h.open()
    assert (path.stat().st_mode & 0o777) == 0o600
    got: list[bytes] = []

    def client():
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        got.append(s.makefile("rb").read())
        s.close()

    t = threading.Thread(target=client)
    t.start()
    # this process stands in for the container: its own cgroup is what is checked
    own_cgroup = Path("/proc/self/cgroup").read_text()
    h.serve(own_cgroup.strip().splitlines()[-1].split(":")[-1], timeout=10)
    t.join(10)
    assert json.loads(got[0]) == {"A": VALUE}
    assert not path.exists()
    with pytest.raises(OSError):
        socket.socket(socket.AF_UNIX).connect(str(path))


def test_handoff_times_out_with_a_clear_line(tmp_path):
    h = SecretHandoff(tmp_path, {"A": VALUE}, agent="alpha")
    h.open()
    with pytest.raises(HandoffFailed, match="did not take its secrets within 1 s"):
        h.serve("x" * 64, timeout=1)
    assert not (tmp_path / "secrets.sock").exists()


def test_a_process_of_another_container_gets_nothing(tmp_path):
    """The peer check: a connection from outside the container is closed empty; the socket stays for the agent."""
    import threading

    h = SecretHandoff(tmp_path, {"A": VALUE}, agent="alpha")
    path = h.open()
    got: list[bytes] = []

    def intruder():
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        got.append(s.makefile("rb").read())
        s.close()

    t = threading.Thread(target=intruder)
    t.start()
    with pytest.raises(HandoffFailed, match="within 2 s"):
        h.serve("f" * 64, timeout=2)  # an id this process's cgroup does not contain
    t.join(5)
    assert got == [b""]
