"""Gemini CLI over the Agent Client Protocol: the real Gemini CLI (``crowd-gemini --acp``) in the
real gemini image, in the agent's own container, crowdtui its client, the model the Gemini API
stand-in (tests/standins/gemini.py, reached only through the agent's egress proxy) scripted to
call Gemini's own write_file tool."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.acp.conftest import STANDIN_HOST, free_port
from tests.standins.gemini import GeminiStandIn
from tests.waiting import wait_for

pytestmark = pytest.mark.docker

KEY = "gemini-test-key-" + "acp" * 8
MODEL = "gemini-test"
PERSONA = "You are Sable, the crew's archivist (persona marker 4f7d)."
NOTE = "/tmp/sable-note.md"  # the container's own tmpfs: Gemini's scratch in mode: acp


@pytest.fixture(scope="session")
def gemini_image(docker_client, agent_image) -> str:
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import ensure_runner_image

    return ensure_runner_image(docker_client, runner_named("gemini"), {}, progress=lambda line: None)


@pytest.fixture
async def gemini_crew(workspace, store, gemini_image, docker_client):
    """sable (gemini, mode: acp) defined, its key in the vault, a hub; ``crew["start"]()``
    starts its container and Gemini CLI's ACP agent in it."""
    from crowdtui.hub.acp.session import AcpAgent
    from crowdtui.hub.hub import Hub
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime
    from crowdtui.secrets import Vault

    port = free_port(STANDIN_HOST)
    folder = workspace.agents_dir / "sable"
    folder.mkdir(parents=True)
    (folder / "AGENT.md").write_text("\n".join([
        "---", "name: sable", "runner: gemini", "mode: acp", f"model: {MODEL}",
        f"base_url: http://{STANDIN_HOST}:{port}", "resources: {memory: 1g, pids: 512}", "---", PERSONA, ""]))
    roster = load_roster(workspace)
    assert not roster.problems, roster.problems
    await sync_roster(store, roster)
    await Vault.open(workspace, store).set("GEMINI_API_KEY", KEY)
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace, store=store, client=docker_client)
    agents: list[AcpAgent] = []

    async def start(**kw) -> AcpAgent:
        await hub.open_door("sable")
        info = await runtime.info("sable")
        if info is None or info.state != "running":
            await runtime.start(roster.get("sable"))
        agent = await AcpAgent(store, runtime, roster.get("sable"), **kw).start()
        agents.append(agent)
        return agent

    yield {"port": port, "roster": roster, "hub": hub, "runtime": runtime, "start": start}
    try:
        for agent in agents:
            await agent.close()
        await runtime.remove("sable")
    finally:
        await hub.stop()


async def container_file(runtime, path: str) -> str | None:
    container = await runtime.container("sable")
    code, out = await asyncio.to_thread(container.exec_run, ["cat", path], user="1000:1000")
    return out.decode() if code == 0 else None


async def pending(store):
    from crowdtui.hub.approvals import pending_requests

    return await pending_requests(store, ["sable"])


def write_standin(port: int, content: str) -> GeminiStandIn:
    return GeminiStandIn(server="", tool="write_file", arguments={"file_path": NOTE, "content": content},
                         host=STANDIN_HOST, port=port).start()


def turns(standin: GeminiStandIn) -> list[dict]:
    return [r for r in standin.requests if ":streamGenerateContent" in r["path"]]


async def test_session_new_carries_cwd_the_crowd_server_and_the_persona(gemini_crew, store):
    standin = GeminiStandIn(server="crowd", tool="never_offered_tool", arguments={}, host=STANDIN_HOST,
                            port=gemini_crew["port"]).start()
    try:
        agent = await gemini_crew["start"]()
        assert agent.how == "new" and agent.session_id and agent.adapter.startswith("gemini-cli")
        assert await asyncio.wait_for(agent.prompt("say hello"), 90) == "end_turn"
        said = "".join(e.text for e in agent.conversation.entries if getattr(e, "role", "") == "agent")
        assert "Nothing to do." in said, agent.conversation.entries
        [first, *_] = turns(standin)
        assert f"/models/{MODEL}:" in first["path"] and first["headers"].get("x-goog-api-key") == KEY
        assert PERSONA in json.dumps(first["body"].get("systemInstruction"))
        from tests.standins.gemini import tool_names

        offered = tool_names(first["body"])
        # the crowd server given in session/new (the bridge: the agent's own door) and Gemini's own tools
        assert "mcp_crowd_send_message" in offered and "write_file" in offered, offered
        [row] = await store.query("SELECT session_id, cwd FROM acp_sessions WHERE agent = 'sable'")
        assert tuple(row) == (agent.session_id, "/workspace")
        assert [(e.actor, e.detail["stop"]) for e in await store.events_after(0, kinds=["acp.turn"])] == [
            ("sable", "end_turn")]
    finally:
        standin.stop()


async def test_allowed_write_lands_inside_the_container_only(gemini_crew, store):
    from crowdtui.hub.approvals import answer_permission

    standin = write_standin(gemini_crew["port"], "note from sable\n")
    try:
        agent = await gemini_crew["start"]()
        turn = asyncio.create_task(agent.prompt("write the note"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        assert "sable-note.md" in request.title, request.title
        assert "+note from sable" in (request.diff or ""), request.diff
        assert await container_file(gemini_crew["runtime"], NOTE) is None  # nothing before the answer
        await answer_permission(store, request.id, "allow_once", "operator")
        assert await asyncio.wait_for(turn, 90) == "end_turn"
        assert await container_file(gemini_crew["runtime"], NOTE) == "note from sable\n"
        assert not Path(NOTE).exists()  # nowhere on the host
        assert standin.result is not None and "error" not in standin.result.lower(), standin.result
        calls = await store.events_after(0, kinds=["acp.tool_call"])
        assert [e.detail["status"] for e in calls] == ["completed"], [e.detail for e in calls]
    finally:
        standin.stop()


async def test_rejected_write_is_reported_to_the_model_and_nothing_written(gemini_crew, store):
    from crowdtui.hub.approvals import answer_permission

    standin = write_standin(gemini_crew["port"], "never\n")
    try:
        agent = await gemini_crew["start"]()
        turn = asyncio.create_task(agent.prompt("write the note"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        await answer_permission(store, request.id, "reject_once", "operator")
        await asyncio.wait_for(turn, 90)
        assert await container_file(gemini_crew["runtime"], NOTE) is None
        [call] = list(agent.conversation.tool_calls.values())
        assert call.status == "failed", call  # crowdtui marks it: Gemini CLI sends no update for a refused call
        # Gemini CLI answers the model's call with the refusal in the same turn, and the model goes on
        assert standin.result is not None and "canceled by the user" in standin.result, standin.result
        said = "".join(e.text for e in agent.conversation.entries if getattr(e, "role", "") == "agent")
        assert "The crowd tool answered" in said and "canceled" in said, said
        [answered] = await store.events_after(0, kinds=["permission.answered"])
        assert answered.actor == "operator"
        calls = await store.events_after(0, kinds=["acp.tool_call"])
        assert [e.detail["status"] for e in calls] == ["failed"], [e.detail for e in calls]
    finally:
        standin.stop()




async def test_a_write_under_the_cwd_is_served_in_the_container_where_the_workspace_is_read_only(
        gemini_crew, store, workspace, tmp_path):
    """Under the session's cwd Gemini CLI reads and writes through its client (fs/read_text_file,
    fs/write_text_file), which crowdtui serves with processes in the agent's container: the
    read sees the workspace as mounted there, and the write fails there because the workspace
    is mounted read-only (workspace: ro, the default), so the host's file stays as it was even
    though the operator allowed the write."""
    from crowdtui.hub.approvals import answer_permission

    (workspace.root / "sable-out.md").write_text("before\n")
    target = "/workspace/sable-out.md"
    record = tmp_path / "wire.jsonl"
    standin = GeminiStandIn(server="", tool="write_file", arguments={"file_path": target, "content": "after\n"},
                            host=STANDIN_HOST, port=gemini_crew["port"]).start()
    try:
        agent = await gemini_crew["start"](record=record)
        turn = asyncio.create_task(agent.prompt("write it out"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        assert "-before" in (request.diff or "") and "+after" in (request.diff or ""), request.diff
        await answer_permission(store, request.id, "allow_once", "operator")
        assert await asyncio.wait_for(turn, 90) == "end_turn"
        wire = [(x["dir"], json.loads(x["line"])) for x in map(json.loads, record.read_text().splitlines())]
        asked = {m["id"]: (m["method"], m["params"]["path"]) for d, m in wire
                 if d == "in" and str(m.get("method", "")).startswith("fs/")}
        assert set(asked.values()) == {("fs/read_text_file", target), ("fs/write_text_file", target)}, asked
        [write_id] = [i for i, (method, _) in asked.items() if method == "fs/write_text_file"]
        [answer] = [m for d, m in wire if d == "out" and m.get("id") == write_id and "method" not in m]
        assert "Read-only file system" in answer["error"]["message"], answer  # refused inside the container
        assert (workspace.root / "sable-out.md").read_text() == "before\n"
        # Gemini CLI 0.61 reports a JSON-RPC error from its client as "[object Object]" (it
        # stringifies the error object), but the model is told the write failed
        assert standin.result is not None and "Error writing to file" in standin.result, standin.result
    finally:
        standin.stop()


async def test_a_crowd_tool_goes_through_the_agents_own_door_and_asks_first(gemini_crew, store):
    """The crowd server given in session/new is the bridge in sable's container (sable's door):
    the hub records the call as sable's. Given over ACP it carries no ``trust`` (Gemini CLI's
    session/new has no such field), so the call waits in the crew's queue first."""
    from crowdtui.hub.approvals import answer_permission

    standin = GeminiStandIn(server="crowd", tool="send_message",
                            arguments={"to": "operator", "body": "hello over ACP from gemini"},
                            host=STANDIN_HOST, port=gemini_crew["port"]).start()
    try:
        agent = await gemini_crew["start"]()
        turn = asyncio.create_task(agent.prompt("tell the operator"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        assert "send_message" in request.title, request.title
        await answer_permission(store, request.id, "allow_once", "operator")
        assert await asyncio.wait_for(turn, 90) == "end_turn"
        assert standin.called_as == "mcp_crowd_send_message"
        [message] = [m for m in await store.inbox("operator") if m.sender == "sable"]
        assert message.body == "hello over ACP from gemini"
        calls = await store.events_after(0, kinds=["hub.call"])
        assert [(e.actor, e.subject) for e in calls if e.subject == "send_message"] == [("sable", "send_message")]
    finally:
        standin.stop()


async def test_allow_always_lets_the_next_write_through_without_asking(gemini_crew, store):
    """"Allow always" is Gemini CLI's own "Allow for this session" option: the next write_file
    in the same session runs without a request."""
    from crowdtui.hub.approvals import answer_permission

    standin = write_standin(gemini_crew["port"], "one\n")
    try:
        agent = await gemini_crew["start"]()
        turn = asyncio.create_task(agent.prompt("write the note"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        await answer_permission(store, request.id, "allow_always", "operator")
        assert await asyncio.wait_for(turn, 90) == "end_turn"
        standin.called_as, standin.arguments = None, {"file_path": NOTE, "content": "two\n"}  # script a second call
        assert await asyncio.wait_for(agent.prompt("write it again"), 90) == "end_turn"
        assert standin.called_as == "write_file"
        assert await container_file(gemini_crew["runtime"], NOTE) == "two\n"
        assert len(await store.events_after(0, kinds=["permission.requested"])) == 1
        calls = await store.events_after(0, kinds=["acp.tool_call"])
        assert [e.detail["status"] for e in calls] == ["completed", "completed"], [e.detail for e in calls]
    finally:
        standin.stop()



async def test_the_session_is_loaded_after_a_container_restart(gemini_crew, store):
    """Gemini CLI advertises loadSession and keeps its chats in the agent's home, which outlives
    the container: after a restart the stored session is loaded and the model sees the earlier
    turn. (Gemini CLI 0.61 names a chat file by the minute it was started and the session's id,
    and a loaded session starts recording into that same name: loaded within the minute it was
    started, the file is emptied first and the load fails. So the test waits for the next minute.)"""
    import time

    standin = GeminiStandIn(server="crowd", tool="never_offered_tool", arguments={}, host=STANDIN_HOST,
                            port=gemini_crew["port"]).start()
    try:
        before = time.gmtime().tm_min
        first = await gemini_crew["start"]()
        started = {before, time.gmtime().tm_min}  # the minute session/new ran in
        assert await asyncio.wait_for(first.prompt("remember the word heliotrope"), 90) == "end_turn"
        sid = first.session_id
        await first.close()
        await gemini_crew["runtime"].restart(gemini_crew["roster"].get("sable"))
        await wait_for(lambda: time.gmtime().tm_min not in started, 130, "the next minute")
        second = await gemini_crew["start"]()
        assert (second.session_id, second.how) == (sid, "loaded"), second.notes
        await wait_for(lambda: any("heliotrope" in getattr(e, "text", "") for e in second.conversation.entries),
                       30, "the earlier conversation replayed")
        assert await asyncio.wait_for(second.prompt("what was the word"), 90) == "end_turn"
        last = json.dumps(turns(standin)[-1]["body"]["contents"])
        assert "remember the word heliotrope" in last and "what was the word" in last, last[-1500:]
        assert [e.detail["how"] for e in await store.events_after(0, kinds=["acp.session"])] == ["new", "loaded"]
    finally:
        standin.stop()
