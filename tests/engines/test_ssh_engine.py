"""An engine reached over ssh:// (a real sshd made by the test, host key checked against
known_hosts): an agent starts, attaches, execs, logs and stops there; a host key that does
not match is refused."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import lifecycle
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.logs import read_logs
from crowdtui.runtime.state import StateFollower
from crowdtui.workspace import load_workspace

from tests.waiting import wait_for

from .conftest import drive_terminal, write_agent

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def ssh_url(far_engine, tmp_path_factory, docker_client, agent_image):
    """sshd beside the engine; the agent image loaded over the engine's own socket first (the
    copy over the network is tests/engines/test_tls_engine.py's; through paramiko it is slow)."""
    from crowdtui.runtime.engines import copy_image

    remote = far_engine.local_client()
    try:
        copy_image(docker_client, remote, agent_image)
    finally:
        remote.close()
    home = tmp_path_factory.mktemp("sshhome")
    return far_engine.start_sshd(home), home


@pytest.fixture
def ssh_workspace(far_workspace, ssh_url, monkeypatch):
    url, home = ssh_url
    monkeypatch.setenv("HOME", str(home))  # paramiko reads ~/.ssh (key, known_hosts, config)
    cfg = far_workspace.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + f'\n[engines.viassh]\nurl = "{url}"\n')
    return load_workspace(far_workspace.root)


async def test_an_agent_runs_on_an_engine_over_ssh(ssh_workspace, docker_client, agent_image, capsys):
    ws = ssh_workspace
    write_agent(ws, "sshy", "engine: viassh\ncommand: [sh]\n", "Reached by ssh.\n")
    runtime = Runtime(ws, docker_client)
    store = await ws.open_store()
    try:
        info = await lifecycle.start(runtime, store, load_roster(ws).get("sshy"), actor="operator",
                                     register_first=True)
        assert (info.engine, info.state) == ("viassh", "running")
        await drive_terminal(runtime, docker_client, info, "ssh", 30, 90, "Reached by ssh.")
        assert any("ssh-42" in line.text for line in await read_logs(runtime, ["sshy"]))
        # its state followed from that engine's events over ssh; the follower stops at once
        follower = StateFollower(runtime, store, engine="viassh")
        halt = asyncio.Event()
        task = asyncio.create_task(follower.run(halt))
        await asyncio.wait_for(follower.ready.wait(), 30)
        container = await runtime.container("sshy")
        await asyncio.to_thread(container.kill)  # not through crowdtui: only the events tell
        await wait_for(lambda: _state(store, "sshy", "crashed"), 30, "sshy crashed, from the engine's events")
        halt.set()
        began = time.monotonic()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - began < 3  # the ssh events stream was closed, not waited out
    finally:
        await store.close()
        await asyncio.to_thread(runtime.close)
    from crowdtui.cli import main

    assert await asyncio.to_thread(main, ["engine", "check", "viassh", "--json", "-w", str(ws.root)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ok"] is True


async def _state(store, name, wanted):
    return (await store.get_agent(name)).state == wanted


def test_a_host_key_that_does_not_match_is_refused(ssh_workspace, ssh_url, capsys):
    _, home = ssh_url
    known = home / ".ssh" / "known_hosts"
    good = known.read_text()
    host, kind, _key = good.split()
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"  # some other ed25519 key
    known.write_text(f"{host} {kind} {other}\n")
    try:
        from crowdtui.cli import main

        assert main(["engine", "check", "viassh", "--json", "-w", str(ssh_workspace.root)]) == 1
        row = json.loads(capsys.readouterr().out)[0]
        assert row["ok"] is False and row["error"]
    finally:
        known.write_text(good)
