"""Shared fixtures. Docker tests use the real engine: if none answers, they fail (never skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crowdtui.workspace import Workspace, init_workspace

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """An empty initialised workspace; containers it created are removed afterwards."""
    ws, _ = init_workspace(tmp_path / "ws", sample=False)
    yield ws
    _remove_containers_of(ws)


@pytest.fixture
def sample_workspace(tmp_path) -> Workspace:
    """A workspace with the sample roster."""
    ws, _ = init_workspace(tmp_path / "ws", sample=True)
    yield ws
    _remove_containers_of(ws)


def _remove_containers_of(ws: Workspace) -> None:
    """Remove the workspace's containers, then unmount its agents' home filesystems."""
    try:
        import docker

        from crowdtui.runtime import labels

        client = docker.from_env()
        for c in client.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={ws.id}"}):
            try:
                c.remove(force=True)
            except Exception:
                pass
        client.close()
    except Exception:
        pass
    from crowdtui.runtime.disk import release_all

    release_all(ws)


@pytest.fixture(scope="session", autouse=True)
def _unmount_leftover_homes(tmp_path_factory):
    """Agents started by subprocesses (the CLI, `make run`) mount homes in workspaces no
    fixture knows: at the end, unmount whatever is still mounted under this run's tmp."""
    yield
    from crowdtui.runtime.disk import unmount_below

    unmount_below(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def docker_client():
    """The real Docker engine. Missing engine is a failure, not a skip."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # pragma: no cover - only when the machine is broken
        pytest.fail(f"no Docker engine answers ({exc}); run `make test`, which starts one")
    yield client
    client.close()


@pytest.fixture(scope="session")
def agent_image(docker_client) -> str:
    """Tag of the agent image (built by `crowdtui image build`; built here if missing)."""
    from crowdtui.runtime.image import ensure_image

    return ensure_image(docker_client, progress=lambda line: None)


@pytest.fixture
def in_ci() -> bool:
    return os.environ.get("CI") == "true"
