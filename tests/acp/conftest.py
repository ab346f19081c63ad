"""Fixtures for the ACP tests: the real claude-code image (with its ACP adapter), an agent in
``mode: acp`` driven by the Anthropic stand-in, a hub, a runtime."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

KEY = "sk-ant-test-" + "acp" * 12
MODEL = "claude-sonnet-4-5"
PERSONA = "You are Quill, the crew's careful editor (persona marker 9c1e)."
STANDIN_HOST = "127.0.0.2"  # not in the container's NO_PROXY: requests go through the egress proxy


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_acp_agent(ws, port: int, name: str = "quill", **extra) -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["---", f"name: {name}", "runner: claude-code", "mode: acp", f"model: {MODEL}", "tools: [mcp__crowd]",
             f"base_url: http://{STANDIN_HOST}:{port}", "resources: {memory: 1g, pids: 512}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    (folder / "AGENT.md").write_text("\n".join(lines + ["---", PERSONA, ""]))


@pytest.fixture(scope="session")
def claude_acp_image(docker_client, agent_image) -> str:
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import ensure_runner_image

    return ensure_runner_image(docker_client, runner_named("claude-code"), {}, progress=lambda line: None)


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    yield s
    await s.close()


@pytest.fixture
async def acp_crew(workspace, store, claude_acp_image, docker_client):
    """quill (claude-code, mode: acp) defined, its key in the vault, a hub; yields the parts.
    ``crew["start"]()`` starts its container and its ACP adapter."""
    from crowdtui.hub.acp.session import AcpAgent
    from crowdtui.hub.hub import Hub
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime
    from crowdtui.secrets import Vault

    port = free_port(STANDIN_HOST)
    write_acp_agent(workspace, port)
    roster = load_roster(workspace)
    assert not roster.errors, roster.problems
    await sync_roster(store, roster)
    await Vault.open(workspace, store).set("ANTHROPIC_API_KEY", KEY)
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace, store=store, client=docker_client)
    agents: list[AcpAgent] = []

    async def start(record=None, **kw) -> AcpAgent:
        import os

        if record is None and os.environ.get("CROWD_ACP_RECORD"):  # to refresh tests/acp/recordings
            record = Path(os.environ["CROWD_ACP_RECORD"])
        await hub.open_door("quill")
        if (await runtime.info("quill")) is None or (await runtime.info("quill")).state != "running":
            await runtime.start(roster.get("quill"))
        agent = await AcpAgent(store, runtime, roster.get("quill"), record=record, **kw).start()
        agents.append(agent)
        return agent

    crew = {"port": port, "roster": roster, "hub": hub, "runtime": runtime, "start": start, "agents": agents}
    yield crew
    try:
        for agent in agents:
            await agent.close()
        await runtime.remove("quill")
    finally:
        await hub.stop()
