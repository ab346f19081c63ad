"""The Terminal widget over the runtime's PtySession to a real container's shell."""

from __future__ import annotations

import pytest

from crowdtui.runtime import labels
from crowdtui.runtime.pty import PtySession
from crowdtui.tui.widgets.terminal import Terminal

from .app import TerminalTestApp
from .test_widget import screen_text, type_line, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def shell_container(workspace, docker_client, agent_image):
    container = docker_client.containers.run(
        agent_image, ["bash", "--norc", "--noprofile", "-i"], detach=True, tty=True, stdin_open=True,
        labels=labels.for_agent(workspace, "termtest"), network_mode="none",
        environment={"TERM": "xterm-256color", "PS1": "$ "},
    )
    yield container
    container.remove(force=True)


async def test_typing_and_resize_reach_container_shell(shell_container, docker_client):
    session = await PtySession.open(docker_client, shell_container.id)
    try:
        app = TerminalTestApp(session)
        async with app.run_test(size=(100, 30)) as pilot:
            term = app.query_one(Terminal)
            await pilot.pause(0.2)
            await pilot.press("enter")  # the first prompt may predate the attach
            await wait_for(pilot, lambda: "$" in screen_text(term), what="the container's prompt")
            await type_line(pilot, "echo in-container-$((6*7))")
            await wait_for(pilot, lambda: "in-container-42" in screen_text(term), what="command output")

            rows, cols = term.size.height, term.size.width
            await type_line(pilot, "stty size")
            await wait_for(pilot, lambda: f"{rows} {cols}" in screen_text(term), what="stty size")

            await pilot.resize_terminal(72, 22)
            await wait_for(pilot, lambda: term.size.width < cols, what="widget resize")
            rows2, cols2 = term.size.height, term.size.width
            await pilot.pause(0.5)  # the engine resize runs in a thread
            await type_line(pilot, "clear; stty size")
            await wait_for(pilot, lambda: f"{rows2} {cols2}" in screen_text(term), what="stty size after resize")
    finally:
        await session.close()
