"""Codex CLI and Gemini CLI in their images, started by crowdtui: each one's own MCP listing
names the crowd server through the bridge (Gemini's also connects to it), and each, driven by
a stand-in of its model API (tests/standins/openai.py: the OpenAI Responses API;
tests/standins/gemini.py: the Gemini API), calls a crowd tool in a real turn."""

from __future__ import annotations

import asyncio
import contextlib
import json

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


@contextlib.asynccontextmanager
async def _member_on(workspace, store, docker_client, runner: str, standin, *, model: str):
    """Agent x of ``runner``, its model API at ``standin`` (base_url), its key in the vault, its
    door open and its container running; the container is given, and all is undone after."""
    from crowdtui.runners import runner_named
    from crowdtui.secrets import Vault

    (workspace.agents_dir / "x").mkdir(parents=True)
    (workspace.agents_dir / "x" / "AGENT.md").write_text(
        f"---\nrunner: {runner}\nmodel: {model}\nbase_url: {standin.url}\n"
        "resources: {memory: 1g, pids: 512}\n---\nPersona of x.\n")
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
        yield docker_client.containers.get(info.container_id)
    finally:
        standin.stop()
        await runtime.remove("x")
        await hub.stop()


async def _the_operator_got(store, standin, text: str, body: str) -> None:
    """The stand-in offered the crowd tool and got its answer back; the hub recorded exactly one
    send_message by x, and the operator has ``body`` from x."""
    assert standin.called_as, f"the stand-in never saw the crowd tool offered: {text[-1500:]} {standin.requests}"
    assert standin.result is not None and "operator" in standin.result, text[-1500:]
    calls = [e for e in await store.events_after(0, limit=10000, kinds=["hub.call"]) if e.actor == "x"]
    assert [(e.subject, e.detail.get("ok")) for e in calls] == [("send_message", True)], calls
    assert [(m.sender, m.body) for m in await store.inbox("operator")] == [("x", body)]


async def test_codex_reaches_the_crowd_server_in_a_turn_driven_by_the_responses_stand_in(
        workspace, store, docker_client, runner_images):
    """Codex in its image, its model provider pointed at a stand-in of the OpenAI Responses
    API reached through the agent's egress allowlist: the stand-in asks for the crowd
    server's send_message, Codex calls it through crowd-mcp-bridge, the hub records the call
    with the agent as actor, and the operator has the message."""
    from tests.standins.openai import ResponsesStandIn

    standin = ResponsesStandIn(server="crowd", tool="send_message",
                               arguments={"to": "operator", "body": "hello from codex"}, host="127.0.0.2").start()
    async with _member_on(workspace, store, docker_client, "codex", standin, model="gpt-test") as container:
        provider = (f'model_providers.standin={{name="standin",base_url="{standin.url}",'
                    'env_key="OPENAI_API_KEY",wire_api="responses"}')
        code, out = await asyncio.to_thread(
            container.exec_run,
            ["crowd-codex", "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
             "-c", "model_provider=standin", "-c", provider, "-m", "gpt-test", "Tell the operator hello."],
            user="1000:1000", workdir="/workspace",
            environment={"HOME": "/home/agent", "OPENAI_API_KEY": "test-key-not-real"})
        await _the_operator_got(store, standin, out.decode("utf-8", "replace"), "hello from codex")
        assert all(r["body"].get("model") == "gpt-test" for r in standin.requests if r["path"].endswith("/responses"))


async def test_gemini_reaches_the_crowd_server_in_a_turn_driven_by_the_gemini_api_stand_in(
        workspace, store, docker_client, runner_images):
    """Gemini CLI in its image, pointed by the definition's base_url (GOOGLE_GEMINI_BASE_URL)
    at a stand-in of the Gemini API reached through the agent's egress allowlist: the
    stand-in asks for the crowd server's send_message, Gemini CLI calls it through
    crowd-mcp-bridge (the server is trusted, no approval asked), the hub records the call with
    the agent as actor, and the operator has the message."""
    from tests.standins.gemini import GeminiStandIn

    standin = GeminiStandIn(server="crowd", tool="send_message",
                            arguments={"to": "operator", "body": "hello from gemini"}, host="127.0.0.2").start()
    async with _member_on(workspace, store, docker_client, "gemini", standin, model="gemini-test") as container:
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert env.get("GOOGLE_GEMINI_BASE_URL") == standin.url, env
        code, out = await asyncio.to_thread(
            container.exec_run,
            ["crowd-gemini", "--model", "gemini-test", "-p", "Tell the operator hello."],
            user="1000:1000", workdir="/workspace",
            environment={"HOME": "/home/agent", "GEMINI_API_KEY": "test-key-not-real"})
        text = out.decode("utf-8", "replace")
        await _the_operator_got(store, standin, text, "hello from gemini")
        turns = [r for r in standin.requests if ":streamGenerateContent" in r["path"]]
        assert turns and all("/models/gemini-test:" in r["path"] for r in turns), [r["path"] for r in turns]
        assert all(r["headers"].get("x-goog-api-key") == "test-key-not-real" for r in turns)
        assert "Persona of x." in json.dumps(turns[0]["body"].get("systemInstruction"))
        passed = [e.detail for e in await store.events_after(0, limit=10000, kinds=["egress.allowed"])
                  if e.actor == "x"]  # the container has only lo: the stand-in is reached through the proxy
        assert len([d for d in passed if (d["host"], d["port"]) == ("127.0.0.2", standin.port)]) \
            >= len(standin.requests), passed
        assert code == 0, text[-1500:]
