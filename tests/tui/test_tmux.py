"""End to end in a real terminal: the console in tmux on the sample roster, an agent started
and typed into, the pane captured."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

import pytest

from crowdtui.runtime import labels
from tests.tui.conftest import add_agent

pytestmark = pytest.mark.docker

CROWDTUI = os.path.join(os.path.dirname(sys.executable), "crowdtui")


SOCKET = f"crowdtui-test-{os.getpid()}"  # a tmux server of our own, with default options


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, "-f", "/dev/null", *args], capture_output=True,
                          text=True, check=True).stdout


def wait_pane(session: str, *texts: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if all(t in screen for t in texts):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"the pane never showed {texts}; last screen:\n{screen}")


def test_console_in_tmux_starts_and_types_into_an_agent(sample_workspace, docker_client,
                                                        agent_image):
    add_agent(sample_workspace, "shell", command="[bash]")
    session = f"crowdtui-test-{os.getpid()}"
    # COLUMNS/LINES from the test run would pin the app's size: the pane decides it
    cmd = shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", CROWDTUI, "--workspace",
                      str(sample_workspace.root)])
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", cmd)
    try:
        tmux("resize-window", "-t", session, "-x", "160", "-y", "48")
        wait_pane(session, "researcher", "qa", "echo", "shell", "docker ✓")
        for keys in ("/", "shell", "Enter", "s"):  # typed like a person, not one burst
            tmux("send-keys", "-t", session, keys)
            time.sleep(0.3)
        wait_pane(session, "● running", timeout=60)
        tmux("send-keys", "-t", session, "t")
        time.sleep(0.5)
        tmux("send-keys", "-t", session, "-l", "echo typed-$((6*7))")
        tmux("send-keys", "-t", session, "Enter")
        screen = wait_pane(session, "typed-42")
        assert "echo typed-$((6*7))" in screen
        tmux("send-keys", "-t", session, "C-]")
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 20
        while subprocess.run(["tmux", "-L", SOCKET, "has-session", "-t", session],
                             capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the console did not quit on q"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
    # quitting left the agent running
    running = docker_client.containers.list(filters={
        "label": [f"{labels.WORKSPACE}={sample_workspace.id}", f"{labels.AGENT}=shell"]})
    assert [c.status for c in running] == ["running"]
