"""Fixtures for several engines: an extra dockerd over tcp+TLS (tests/engines/engine_harness.py),
and a workspace whose crowd.toml names it ``far``."""

from __future__ import annotations

import pytest

from .engine_harness import start_engine


@pytest.fixture(scope="module")
def far_engine():
    """An extra engine in its own network namespace, reached over tcp with TLS; removed after."""
    engine = start_engine(0)
    yield engine
    engine.teardown()


@pytest.fixture
def far_workspace(workspace, far_engine, monkeypatch):
    """The workspace with ``[engines.far]`` in crowd.toml (and the machine's CA bundle in the
    environment, which must not override the engine's own CA: FIELD-NOTES)."""
    from crowdtui.workspace import load_workspace

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    cfg = workspace.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + "\n" + far_engine.toml("far", labels=("big",)))
    yield load_workspace(workspace.root)
    client = far_engine.local_client()
    try:
        from crowdtui.runtime import labels

        for c in client.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={workspace.id}"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": f"{labels.WORKSPACE}={workspace.id}"}):
            v.remove(force=True)
    except Exception:
        pass
    finally:
        client.close()


def write_agent(ws, name: str, front: str, body: str = "") -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(f"---\nname: {name}\n{front}---\n{body}")
