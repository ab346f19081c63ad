"""Codex CLI and Gemini CLI in their images, started by crowdtui: each one's own MCP listing
names the crowd server through the bridge (Gemini's also connects to it)."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.hub.hub import Hub
from crowdtui.roster import load_roster, sync_roster
from crowdtui.runtime.containers import Runtime

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def runner_images(docker_client, agent_image) -> dict[str, str]:
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import ensure_runner_image

    return {name: ensure_runner_image(docker_client, runner_named(name), {}, progress=lambda line: None)
            for name in ("codex", "gemini")}


@pytest.mark.parametrize("runner,listing,expected", [
    ("codex", ["crowd-codex", "mcp", "list"], ("crowd", "crowd-mcp-bridge")),
    ("gemini", ["crowd-gemini", "mcp", "list"], ("crowd", "crowd-mcp-bridge", "Connected")),
])
async def test_the_runner_lists_the_crowd_server(workspace, store, docker_client, runner_images, runner, listing,
                                                 expected):
    from crowdtui.runners import runner_named
    from crowdtui.secrets import Vault

    (workspace.agents_dir / "x").mkdir(parents=True)
    (workspace.agents_dir / "x" / "AGENT.md").write_text(
        f"---\nrunner: {runner}\nresources: {{memory: 1g, pids: 512}}\n---\nPersona of x.\n")
    roster = load_roster(workspace)
    assert not roster.problems, roster.problems
    await sync_roster(store, roster)
    await Vault.open(workspace, store).set(runner_named(runner).secret, "test-key-not-real")
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace, docker_client, store=store)
    try:
        await hub.open_door("x")
        info = await runtime.start(roster.get("x"))
        assert info.image == runner_images[runner]
        container = docker_client.containers.get(info.container_id)
        code, out = await asyncio.to_thread(container.exec_run, listing, user="1000:1000", workdir="/workspace",
                                            environment={"HOME": "/home/agent"})
        text = out.decode("utf-8", "replace")
        assert code == 0, text
        for word in expected:
            assert word in text, text
        persona = runner_named(runner).persona_target
        code, out = await asyncio.to_thread(container.exec_run, ["cat", persona], user="1000:1000")
        assert out.decode() == "Persona of x.\n"
    finally:
        await runtime.remove("x")
        await hub.stop()
