"""Agent-like containers for terminal tests: the agent image, a TTY, the workspace's labels."""

from __future__ import annotations

import pytest

from crowdtui.runtime import labels


@pytest.fixture
def start_container(workspace, docker_client, agent_image):
    """start_container(name, cmd, tty=True) -> a running container labelled as agent ``name``."""
    made = []

    def start(name: str, cmd: list[str] | None = None, *, tty: bool = True):
        container = docker_client.containers.run(
            agent_image,
            cmd or ["bash"],
            detach=True,
            tty=tty,
            stdin_open=tty,
            labels=labels.for_agent(workspace, name),
            network_mode="none",
            environment={"TERM": "xterm-256color", "PS1": "$ "},
        )
        made.append(container)
        return container

    yield start
    for container in made:
        try:
            container.remove(force=True)
        except Exception:
            pass
