"""``crowdtui mcp``: the operator's own AI client on the host reaches the operator's tools.

The real command as a subprocess: the MCP SDK's stdio client sends a message and approves a
document through it, with no host running; Claude Code's own ``claude mcp list`` (the real
binary, taken from crowdtui's npm cache, never downloaded twice) shows it connected.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from crowdtui.host import host_running
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
CROWDTUI = str(Path(sys.executable).with_name("crowdtui"))


def write_agents(ws) -> None:
    for rel, front in {"lead": "name: lead\n", "writer": "name: writer\n", "reviewer": "name: reviewer\n"}.items():
        (ws.agents_dir / rel).mkdir(parents=True)
        (ws.agents_dir / rel / "AGENT.md").write_text(f"---\n{front}---\nA test agent.\n")


def structured(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def operator_server(ws) -> StdioServerParameters:
    return StdioServerParameters(command=CROWDTUI, args=["--workspace", str(ws.root), "mcp"], cwd=str(REPO),
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.docker
async def test_the_operator_sends_approves_and_manages_agents_through_crowdtui_mcp(workspace):
    from qms import Store

    write_agents(workspace)
    assert not host_running(workspace)
    # a document written by one agent, reviewed by another, waiting for the operator's approval
    store = await Store.open(workspace.db_path)
    try:
        for name in ("writer", "reviewer", "lead"):
            await store.upsert_agent(name, path=name, tier=0)
        doc = await store.create_document("writer", "SOP", "Backups", "Back up nightly.\n")
        await store.route(doc.id, "writer", "review", ["reviewer"])
        await store.review(doc.id, "reviewer", "recommend", "reads well")
        await store.route(doc.id, "writer", "approval", ["operator"])
        assert (await store.get_document(doc.id)).state == "IN_APPROVAL"

        async with Client(stdio_client(operator_server(workspace))) as op:
            tools = {t.name for t in (await op.list_tools()).tools}
            assert {"send_message", "get_messages", "approve_document", "list_agents", "spawn_agent",
                    "start_agent", "retire_agent", "add_route", "decide_route", "list_tasks"} <= tools

            sent = structured(await op.call_tool("send_message", {"to": "lead", "body": "hello from my assistant"}))
            assert sent["recipients"] == ["lead"]
            [m] = await store.inbox("lead")
            assert (m.sender, m.body) == ("operator", "hello from my assistant")

            tasks = structured(await op.call_tool("my_tasks", {}))["tasks"]
            assert [t["doc_id"] for t in tasks] == [doc.id]
            out = structured(await op.call_tool("approve_document", {"doc_id": doc.id, "comment": "ok"}))
            assert out["state"] == "EFFECTIVE"

            # routes and agent lifecycle as the operator
            route = structured(await op.call_tool("add_route", {"match": "platform=local chat=local:ops",
                                                                 "agent": "lead"}))
            assert route["route"]["owner"] == "operator"
            from crowdtui.dispatch.routes import add_route

            pending = await add_route(store, "platform=*", "lead", actor="lead", now=0.0)
            assert pending.state == "pending"  # an agent's wide route waits for the operator
            decided = structured(await op.call_tool("decide_route", {"route_id": pending.id, "approve": True}))
            assert decided["route"]["state"] == "active"
            listed = {a["name"] for a in structured(await op.call_tool("list_agents", {}))["agents"]}
            assert {"lead", "writer", "reviewer"} <= listed  # synced from agents/: no host runs
            spawned = structured(await op.call_tool("spawn_agent", {"name": "helper", "description": "helps"}))
            assert spawned["path"] == "helper" and (workspace.agents_dir / "helper" / "AGENT.md").is_file()
            assert "spawned_by: operator" in (workspace.agents_dir / "helper" / "AGENT.md").read_text()
            with pytest.raises(MCPError, match="no spawned_by"):
                await op.call_tool("retire_agent", {"name": "lead"})
            retired = structured(await op.call_tool("retire_agent", {"name": "helper"}))
            assert retired["retired"] and not (workspace.agents_dir / "helper").exists()

        assert (await store.get_document(doc.id)).state == "EFFECTIVE"
        calls = await store.events_after(0, limit=1000, kinds="hub.call", actor="operator")
        assert {"send_message", "approve_document", "spawn_agent"} <= {e.subject for e in calls}
        assert {e.detail.get("via") for e in calls} == {"stdio"}  # not mistaken for an agent's socket
        assert await store.events_after(0, kinds="agent.retired", actor="operator")
    finally:
        await store.close()


@pytest.mark.docker
async def test_beside_a_running_host_the_operator_starts_an_agent_that_answers(workspace, agent_image):
    (workspace.agents_dir / "echo").mkdir(parents=True)
    (workspace.agents_dir / "echo" / "AGENT.md").write_text(
        "---\nname: echo\ncommand: [crowd-agent, --role, echo, --poll, '0.3']\n---\nEchoes.\n")
    host = subprocess.Popen([CROWDTUI, "--workspace", str(workspace.root), "hub", "--no-dispatch"], cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        await wait_for(lambda: host_running(workspace), 30, "the host")
        async with Client(stdio_client(operator_server(workspace))) as op:
            started = structured(await op.call_tool("start_agent", {"name": "echo"}))
            assert started["state"] == "running" and "note" not in started  # the host gives it its door
            await op.call_tool("send_message", {"to": "echo", "body": "are you there?"})

            async def answer():
                got = structured(await op.call_tool("get_messages", {}))["messages"]
                return [m["body"] for m in got if m["sender"] == "echo"]

            assert await wait_for(answer, 45, "echo's answer in the operator's inbox") == ["echo: are you there?"]
            stopped = structured(await op.call_tool("stop_agent", {"name": "echo"}))
            assert stopped["state"] in ("exited", "stopped")
    finally:
        host.terminate()
        await asyncio.to_thread(host.wait, 30)


@pytest.fixture(scope="session")
def claude_binary(tmp_path_factory) -> Path:
    """The real ``claude`` from the tarball crowdtui's runner image is built from (fetched
    with npm only when the cache lacks it, as `crowdtui image build` does)."""
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import fetch_package

    [pkg] = [p for p in runner_named("claude-code").packages if p.name == "@anthropic-ai/claude-code-linux-x64"]
    tarball = fetch_package(pkg, pkg.version, lambda line: None)
    folder = tmp_path_factory.mktemp("claude")
    with tarfile.open(tarball) as tar:
        member = tar.getmember("package/claude")
        member.name = "claude"
        tar.extract(member, folder, filter="data")
    binary = folder / "claude"
    binary.chmod(0o755)
    return binary


async def test_claude_code_lists_crowdtui_mcp_as_connected(workspace, claude_binary, tmp_path):
    write_agents(workspace)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}

    def claude(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(claude_binary), *args], capture_output=True, text=True, timeout=50,
                              env=env, cwd=str(tmp_path))

    added = await asyncio.to_thread(claude, "mcp", "add", "--scope", "user", "crowd", "--",
                                    CROWDTUI, "--workspace", str(workspace.root), "mcp")
    assert added.returncode == 0, added.stdout + added.stderr
    listed = await asyncio.to_thread(claude, "mcp", "list")
    text = listed.stdout + listed.stderr
    assert listed.returncode == 0, text
    [line] = [ln for ln in text.splitlines() if ln.startswith("crowd:")]
    assert "crowdtui" in line and "mcp" in line
    assert "Connected" in line, text
