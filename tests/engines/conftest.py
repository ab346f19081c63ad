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


class Screen:
    """What a terminal viewer received."""

    def __init__(self):
        self.data = bytearray()

    def on_output(self, data: bytes) -> None:
        self.data += data

    async def wait_for(self, text: str, what: str = "output") -> None:
        from tests.waiting import wait_for

        await wait_for(lambda: text.encode() in self.data, 30, what)


async def drive_terminal(runtime, docker_client, info, tag: str, rows: int, cols: int, exec_expect: str) -> None:
    """Attach (through a session pool, as the console does), type, resize; then an exec
    (``cat ~/CLAUDE.md``) whose output holds ``exec_expect``."""
    from crowdtui.runtime.pty import SessionPool, open_exec

    pool = SessionPool(docker_client, resolve=runtime.client_for_container)
    session = await pool.get(info.container_id)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output)
    viewer.write(f"echo {tag}-$((40+2))\r".encode())
    await screen.wait_for(f"{tag}-42")
    await session.resize_now(rows, cols)
    viewer.write(b"stty size\r")
    await screen.wait_for(f"{rows} {cols}")
    await pool.close()
    container = await runtime.container(info.name)
    exe = await open_exec(container.client, container.id, ["sh", "-c", "cat ~/CLAUDE.md"])
    seen = Screen()
    exe.add_viewer(seen.on_output, replay=True)
    await seen.wait_for(exec_expect)
    await exe.close()


async def stop_host(host, runtime, far_engine, ws) -> None:
    """Stop a test's Host and runtime, printing the far engine's relay log first (what a failed
    test needs to say why)."""
    from crowdtui.runtime.relay_container import find_relay

    remote = far_engine.local_client()
    try:
        relay = find_relay(remote, ws, "far")
        if relay is not None:
            print("relay log:\n" + relay.logs(tail=40).decode(errors="replace"))
    finally:
        remote.close()
    await host.stop()
    runtime.close()
