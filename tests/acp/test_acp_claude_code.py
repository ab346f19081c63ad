"""Claude Code over the Agent Client Protocol: the real adapter (@zed-industries/claude-code-acp)
in the real claude-code image, in the agent's own container, crowdtui its client, the model
the Anthropic stand-in (reached only through the agent's egress proxy)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.acp.conftest import PERSONA
from tests.standins.anthropic import AnthropicStandIn, Turn, system_text
from tests.waiting import wait_for

pytestmark = pytest.mark.docker

NOTE = "/tmp/quill-note.md"


async def container_file(runtime, path: str) -> str | None:
    container = await runtime.container("quill")
    code, out = await asyncio.to_thread(container.exec_run, ["cat", path], user="1000:1000")
    return out.decode() if code == 0 else None


async def pending(store, agent="quill"):
    from crowdtui.hub.approvals import pending_requests

    return await pending_requests(store, [agent])


async def test_session_new_carries_cwd_crowd_server_and_persona(acp_crew, store):
    standin = AnthropicStandIn([Turn(name="hi", when="say hello", text="Hello from quill.")],
                               host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        assert agent.how == "new" and agent.session_id
        stop = await agent.prompt("say hello")
        assert stop == "end_turn"
        said = [e.text for e in agent.conversation.entries if getattr(e, "role", "") == "agent"]
        assert "Hello from quill." in "".join(said), agent.conversation.entries
        main = standin.main_requests()
        assert main and PERSONA in system_text(main[-1]["body"])
        tools = {t["name"] for t in main[-1]["body"]["tools"]}
        assert "mcp__crowd__send_message" in tools  # the crowd server, through the agent's own door
        assert "mcp__acp__Write" in tools  # file writes come to crowdtui (served in the container)
        [row] = await store.query("SELECT session_id, cwd FROM acp_sessions WHERE agent = 'quill'")
        assert tuple(row) == (agent.session_id, "/workspace")
        turns = await store.events_after(0, kinds=["acp.turn"])
        assert [(e.actor, e.detail["stop"]) for e in turns] == [("quill", "end_turn")]
    finally:
        standin.stop()


async def test_permission_allow_writes_inside_the_container_only(acp_crew, store, tmp_path):
    from crowdtui.hub.approvals import answer_permission

    turns = [Turn(name="w", when="write the note", tool="mcp__acp__Write",
                  input={"file_path": NOTE, "content": "note from quill\n"}),
             Turn(name="done", when="toolu_w", text="Written.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        turn = asyncio.create_task(agent.prompt("write the note"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        assert request.title == f"Write {NOTE}"
        assert "+note from quill" in (request.diff or "")
        assert await container_file(acp_crew["runtime"], NOTE) is None  # nothing before the answer
        await answer_permission(store, request.id, "allow_once", "operator")
        assert await asyncio.wait_for(turn, 90) == "end_turn"
        assert await container_file(acp_crew["runtime"], NOTE) == "note from quill\n"
        assert not Path(NOTE).exists()  # nowhere on the host
        calls = await store.events_after(0, kinds=["acp.tool_call"])
        assert [(e.subject, e.detail["status"]) for e in calls] == [(f"Write {NOTE}", "completed")]
    finally:
        standin.stop()


async def test_permission_rejected_is_reported_to_the_agent(acp_crew, store):
    from crowdtui.hub.approvals import answer_permission

    turns = [Turn(name="w", when="write the note", tool="mcp__acp__Write",
                  input={"file_path": NOTE, "content": "never\n"}),
             Turn(name="after", when="toolu_w", text="Understood, not written.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        turn = asyncio.create_task(agent.prompt("write the note"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        await answer_permission(store, request.id, "reject_once", "operator")
        await asyncio.wait_for(turn, 90)
        assert await container_file(acp_crew["runtime"], NOTE) is None
        [call] = [c for c in agent.conversation.tool_calls.values()]
        assert call.status == "failed"
        # Claude Code stops the turn at a refusal; the refusal is the tool's result in its
        # conversation, which the model sees with the next prompt
        await asyncio.wait_for(agent.prompt("what happened?"), 90)
        last = json.dumps(standin.main_requests()[-1]["body"]["messages"])
        assert "toolu_w" in last and "The tool use was rejected" in last, last[-1500:]
    finally:
        standin.stop()


async def test_allow_always_lets_the_next_identical_request_through(acp_crew, store):
    from crowdtui.hub.approvals import answer_permission

    turns = [Turn(name="w1", when="write the note", tool="mcp__acp__Write",
                  input={"file_path": NOTE, "content": "one\n"}),
             Turn(name="d1", when="toolu_w1", text="First written."),
             Turn(name="w2", when="write it again", tool="mcp__acp__Write",
                  input={"file_path": NOTE, "content": "two\n"}),
             Turn(name="d2", when="toolu_w2", text="Second written.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        turn = asyncio.create_task(agent.prompt("write the note"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        await answer_permission(store, request.id, "allow_always", "operator")
        await asyncio.wait_for(turn, 90)
        asked = agent.permissions_asked
        assert await asyncio.wait_for(agent.prompt("write it again"), 90) == "end_turn"
        assert await container_file(acp_crew["runtime"], NOTE) == "two\n"
        assert await pending(store) == []
        opened = await store.events_after(0, kinds=["permission.requested"])
        assert len(opened) == 1, [e.detail for e in opened]  # the second went through without asking
        assert agent.permissions_asked in (asked, asked + 1)  # the adapter's rule or the queue's
    finally:
        standin.stop()


async def test_session_is_loaded_after_a_container_restart(acp_crew, store):
    turns = [Turn(name="a", when="remember the word", text="I will remember: heliotrope."),
             Turn(name="b", when="what was the word", text="It was heliotrope.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        first = await acp_crew["start"]()
        await first.prompt("remember the word")
        sid = first.session_id
        await first.close()
        runtime = acp_crew["runtime"]
        await runtime.restart(acp_crew["roster"].get("quill"))
        second = await acp_crew["start"]()
        assert (second.session_id, second.how) == (sid, "loaded")
        # the earlier turns come back with the session (replayed by the adapter)
        await wait_for(lambda: any("heliotrope" in getattr(e, "text", "") for e in second.conversation.entries),
                       30, "the earlier conversation replayed")
        await second.prompt("what was the word")
        # the model sees the whole conversation: the first turn is in the second turn's request
        last = json.dumps(standin.main_requests()[-1]["body"]["messages"])
        assert "remember the word" in last and "heliotrope" in last
        sessions = await store.events_after(0, kinds=["acp.session"])
        assert [e.detail["how"] for e in sessions] == ["new", "loaded"]
    finally:
        standin.stop()


async def test_a_session_that_cannot_be_loaded_is_said_and_a_new_one_starts(acp_crew, store):
    from qms.acp_sessions import save_session

    standin = AnthropicStandIn([], host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        await save_session(store, "quill", "0badc0de-0000-4000-8000-000000000000", cwd="/workspace",
                           adapter="earlier", can_load=1, how="new")
        agent = await acp_crew["start"]()
        assert agent.how == "new" and agent.session_id != "0badc0de-0000-4000-8000-000000000000"
        assert agent.notes and "could not be resumed" in agent.notes[0]  # the console's status line
        [event] = await store.events_after(0, kinds=["acp.no_resume"])
        assert "session/load failed" in event.detail["reason"]
        [row] = await store.query("SELECT session_id FROM acp_sessions WHERE agent = 'quill'")
        assert row[0] == agent.session_id
    finally:
        standin.stop()


async def test_crowd_tools_go_through_the_agents_own_door_preapproved(acp_crew, store):
    """tools: [mcp__crowd] pre-approves the crowd tools in mode: acp too (no request waits), and
    the hub sees the call as quill's: the bridge in quill's container is quill's door."""
    turns = [Turn(name="s", when="tell the operator", tool="mcp__crowd__send_message",
                  input={"to": "operator", "body": "hello over ACP"}),
             Turn(name="d", when="toolu_s", text="Sent.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        assert await asyncio.wait_for(agent.prompt("tell the operator"), 90) == "end_turn"
        [message] = [m for m in await store.inbox("operator") if m.sender == "quill"]
        assert message.body == "hello over ACP"
        assert await store.events_after(0, kinds=["permission.requested"]) == []
        calls = await store.events_after(0, kinds=["hub.call"])
        assert [(e.actor, e.subject) for e in calls if e.subject == "send_message"] == [("quill", "send_message")]
    finally:
        standin.stop()


async def test_thoughts_and_the_plan_reach_the_conversation(acp_crew, store, tmp_path):
    """The model's thinking and a TodoWrite plan come as agent_thought_chunk and plan updates.
    (With CROWD_ACP_RECORD set this run is tests/acp/recordings/plan_and_thought.jsonl.)"""
    todos = [{"content": "Read the style guide", "status": "completed", "activeForm": "Reading"},
             {"content": "Write the summary", "status": "in_progress", "activeForm": "Writing"}]
    turns = [Turn(name="p", when="make a plan", thinking="First I should list the steps.", tool="TodoWrite",
                  input={"todos": todos}),
             Turn(name="d", when="toolu_p", text="Plan made.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        assert await asyncio.wait_for(agent.prompt("make a plan"), 90) == "end_turn"
        kinds = [(type(e).__name__, getattr(e, "role", "")) for e in agent.conversation.entries]
        assert ("Message", "thought") in kinds and ("Plan", "") in kinds, kinds
        [plan] = [e for e in agent.conversation.entries if type(e).__name__ == "Plan"]
        assert [(p["content"], p["status"]) for p in plan.entries] == [
            ("Read the style guide", "completed"), ("Write the summary", "in_progress")]
        [thought] = [e for e in agent.conversation.entries if getattr(e, "role", "") == "thought"]
        assert thought.text == "First I should list the steps."
    finally:
        standin.stop()


async def test_the_bash_tool_runs_in_a_terminal_inside_the_container(acp_crew, store):
    """With the terminal capability Claude Code's Bash is the adapter's, whose terminal/create
    crowdtui serves with a process in the agent's container (after the queue allowed it)."""
    from crowdtui.hub.approvals import answer_permission

    turns = [Turn(name="b", when="run the check", tool="mcp__acp__Bash",
                  input={"command": "id -un > /tmp/ran-by && cat /tmp/ran-by", "description": "who runs it",
                         "timeout": 60000}),  # the adapter's Bash schema requires it
             Turn(name="d", when="toolu_b", text="Checked.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        agent = await acp_crew["start"]()
        turn = asyncio.create_task(agent.prompt("run the check"))
        [request] = await wait_for(lambda: pending(store), 90, "the permission request")
        await answer_permission(store, request.id, "allow_once", "operator")
        assert await asyncio.wait_for(turn, 90) == "end_turn"
        last = json.dumps(standin.main_requests()[-1]["body"]["messages"])
        assert await container_file(acp_crew["runtime"], "/tmp/ran-by") == "agent\n", (
            [(c.status, c.content, c.tool) for c in agent.conversation.tool_calls.values()],
            [m for m in standin.main_requests()[-1]["body"]["messages"] if m["role"] == "user"][-1])
        assert not Path("/tmp/ran-by").exists()
        # the command's output went back to the model as the tool's result
        last = json.dumps(standin.main_requests()[-1]["body"]["messages"])
        assert "toolu_b" in last and "agent" in last
    finally:
        standin.stop()
