"""End to end in a real terminal: `make run` (the README's command: set-up, then the console)
in tmux on a fresh sample workspace, an agent started and typed into, the pane captured.

Every key is sent only once the pane shows that the previous one took effect (the filter
is open, the list has focus, the terminal has focus), never after a fixed pause: a key sent
before focus arrives would land on the wrong widget."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from crowdtui.runtime import labels
from tests.tui.conftest import add_agent

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SOCKET = f"crowdtui-test-{os.getpid()}"  # a tmux server of our own, with default options
# The embedded terminal draws its cursor (reverse video) only while it has focus.
TERMINAL_CURSOR = re.compile(r"agent@shell:\S*\$ \x1b\[7m")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, "-f", "/dev/null", *args], capture_output=True,
                          text=True, check=True).stdout


def capture(session: str, *, escapes: bool = False) -> str:
    return tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", session)


def wait_pane(session: str, *texts: str, absent: tuple[str, ...] = (), timeout: float = 60,
              check=None, escapes: bool = False) -> str:
    """Wait until the pane shows every text, none of ``absent``, and ``check(screen)`` holds."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session, escapes=escapes)
        if (all(t in screen for t in texts) and not any(t in screen for t in absent)
                and (check is None or check(screen))):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"the pane never showed {texts} (without {absent}); last screen:\n{screen}")


def footer(screen: str) -> str:
    return screen.rstrip("\n").rsplit("\n", 1)[-1]


def test_make_run_in_tmux_starts_and_types_into_an_agent(sample_workspace, docker_client, agent_image):
    assert (REPO / "Makefile").is_file() and (REPO / ".venv" / "bin" / "crowdtui").exists()
    add_agent(sample_workspace, "shell", command="[bash]")
    session = f"crowdtui-test-{os.getpid()}"
    # `make run` in the repository, on this test's workspace (the Makefile's .venv/bin/crowdtui
    # finds it through CROWD_WORKSPACE, not the repository's own sample state). COLUMNS/LINES
    # from the test run would pin the app's size: the pane decides it.
    cmd = shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", "-u", "MAKEFLAGS", "-u", "MAKELEVEL",
                      f"CROWD_WORKSPACE={sample_workspace.root}", "make", "-C", str(REPO), "run"])
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "48", cmd)
    try:
        tmux("resize-window", "-t", session, "-x", "160", "-y", "48")
        # set-up may reinstall the package or rebuild the image the first time: a generous wait
        wait_pane(session, "researcher", "qa", "echo", "shell", "docker ✓", f"{sample_workspace.name} ·",
                  timeout=300, check=lambda s: "s start" in footer(s))  # and the agent list has focus

        tmux("send-keys", "-t", session, "/")
        wait_pane(session, "filter agents", check=lambda s: "s start" not in footer(s))  # the filter has focus
        tmux("send-keys", "-t", session, "-l", "shell")
        wait_pane(session, "press s to start it", absent=("researcher",))  # filtered to shell, selected
        tmux("send-keys", "-t", session, "Enter")
        wait_pane(session, check=lambda s: "s start" in footer(s))  # focus is back on the list
        tmux("send-keys", "-t", session, "s")
        wait_pane(session, "● running", timeout=120)

        tmux("send-keys", "-t", session, "t")
        wait_pane(session, escapes=True, check=TERMINAL_CURSOR.search)  # the terminal has focus
        tmux("send-keys", "-t", session, "-l", "echo typed-$((6*7))")
        wait_pane(session, "$ echo typed-$((6*7))")  # echoed by the agent's shell: it reached the PTY
        tmux("send-keys", "-t", session, "Enter")
        screen = wait_pane(session, "typed-42")
        assert "echo typed-$((6*7))" in screen

        tmux("send-keys", "-t", session, "C-]")
        wait_pane(session, escapes=True, check=lambda s: not TERMINAL_CURSOR.search(s))  # released
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 20
        while subprocess.run(["tmux", "-L", SOCKET, "has-session", "-t", session],
                             capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the console did not quit on q"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-server"], capture_output=True)
    # quitting left the agent running (the sample_workspace fixture removes it afterwards)
    running = docker_client.containers.list(filters={
        "label": [f"{labels.WORKSPACE}={sample_workspace.id}", f"{labels.AGENT}=shell"]})
    assert [c.status for c in running] == ["running"]
