"""The connection to the Docker engine, and the one translation of its errors."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from crowdtui.errors import CrowdError, EngineUnavailable


def where() -> str:
    """The engine's address (``DOCKER_HOST``, else the local socket)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(timeout: int = 60):
    """A ``docker.DockerClient`` that answers, or ``EngineUnavailable`` saying what to do."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=timeout)
    except DockerException as exc:
        raise EngineUnavailable(
            f"no Docker engine answers at {where()}; start Docker "
            "(e.g. `make setup`, or `dockerd &` as root) and try again"
        ) from exc
    try:
        client.ping()
    except Exception as exc:
        client.close()
        raise EngineUnavailable(
            f"no Docker engine answers at {where()}; start Docker "
            "(e.g. `make setup`, or `dockerd &` as root) and try again"
        ) from exc
    return client


@contextlib.contextmanager
def engine_errors(failure: type[CrowdError], then: str = "retry") -> Iterator[None]:
    """Docker SDK trouble inside the block becomes a one-line error for the operator:
    an engine that stopped answering is :class:`EngineUnavailable` (``then`` says what to
    do once it is back), a refusal or any other SDK error is ``failure``."""
    import requests
    from docker.errors import APIError, DockerException

    try:
        yield
    except requests.exceptions.ConnectionError as exc:
        raise EngineUnavailable(
            f"the Docker engine stopped answering; start it again (e.g. `make setup`) and {then}"
        ) from exc
    except APIError as exc:
        raise failure(f"the Docker engine refused: {exc.explanation or exc}") from exc
    except DockerException as exc:
        raise failure(f"Docker: {exc}") from exc
