"""Fixtures for the runtime tests: a Runtime on the real engine, agents built in code."""

from __future__ import annotations

import pytest

from crowdtui.runtime.containers import Runtime
from .runtime_helpers import make_agent


@pytest.fixture
def runtime(workspace, docker_client, agent_image) -> Runtime:
    return Runtime(workspace, docker_client)


@pytest.fixture
def agent(workspace):
    """Factory: ``agent("a", command=(...), resources=Resources(...))``."""
    return lambda name, command=("sleep", "infinity"), **fields: make_agent(workspace, name, command, **fields)


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    yield s
    await s.close()
