"""The connection to the Docker engine."""

from __future__ import annotations

import os

from crowdtui.errors import EngineUnavailable


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: int = 60):
    """A ``docker.DockerClient`` that answers, or ``EngineUnavailable`` saying what to do."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
    except DockerException as exc:
        raise EngineUnavailable(
            f"no Docker engine answers at {_where()}; start Docker "
            "(e.g. `make setup`, or `dockerd &` as root) and try again"
        ) from exc
    try:
        client.ping()
    except Exception as exc:
        client.close()
        raise EngineUnavailable(
            f"no Docker engine answers at {_where()}; start Docker "
            "(e.g. `make setup`, or `dockerd &` as root) and try again"
        ) from exc
    return client
