"""The whole path for real: serve on 127.0.0.1, `crowdtui channel local` registered, a
chat message routed to an agent container running the scripted echo agent (started by
its launch policy), its reply sent back through the channel's callback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from serve_helpers import REPO, cli, start_serve, stop, wait_ready, write_agent

pytestmark = pytest.mark.docker


def read_until(proc: subprocess.Popen, needle: str, timeout: float) -> list[str]:
    """Lines from the channel's stdout until one contains ``needle``."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sel.select(timeout=0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if needle in line:
            return lines
    raise AssertionError(f"no {needle!r} from the channel within {timeout:.0f} s; got {lines}")


async def test_chat_message_to_a_container_and_its_reply_back(workspace, agent_image, docker_client):
    from crowdtui.runtime import labels

    write_agent(workspace, "echo", front="command: [crowd-agent, --role, echo, --poll, '0.2']\nlaunch: on_task\n",
                body="# Echo\nAnswers every message.")
    serve = start_serve(workspace, "--health-interval", "2")
    channel = None
    try:
        await wait_ready(workspace, serve, timeout=90)
        r = await asyncio.to_thread(cli, workspace, "route", "add", "platform=local", "echo")
        assert r.returncode == 0, r.stderr
        channel = subprocess.Popen(
            [sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "channel", "local",
             "--user", "ann"],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        channel.stdin.write("/who\n")
        channel.stdin.flush()
        await asyncio.to_thread(read_until, channel, "dispatch: you are talking to echo (route)", 60)
        channel.stdin.write("hello crowd\n")
        channel.stdin.flush()
        lines = await asyncio.to_thread(read_until, channel, "echo: echo: hello crowd", 120)
        assert lines[-1] == "echo: echo: hello crowd"
        # the container was started by the launch policy and carries the workspace's labels
        found = docker_client.containers.list(filters={"label": [f"{labels.WORKSPACE}={workspace.id}",
                                                                 f"{labels.AGENT}=echo"]})
        assert len(found) == 1
    finally:
        if channel is not None:
            channel.stdin.close()
            try:
                channel.wait(timeout=20)
            except subprocess.TimeoutExpired:
                channel.kill()
        rc, _, err = stop(serve)
    assert rc == 0, err
    assert channel.returncode == 0
    status = channel.stderr.read()
    assert "connected to http://127.0.0.1:" in status and "(echo is typing…)" in status
