"""Fixtures for the runner tests: the real claude-code image, a Claude Code agent's workspace."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def claude_image(docker_client, agent_image) -> str:
    """The claude-code runner image at the default pin (fetched with the host's npm once, cached)."""
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import ensure_runner_image

    return ensure_runner_image(docker_client, runner_named("claude-code"), {}, progress=lambda line: None)


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    yield s
    await s.close()
