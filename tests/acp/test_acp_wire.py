"""The ACP client's wire and the requests it serves, against hostile input: the JSON-RPC
connection on its own (bounded lines, replayed ids, junk), the conversation's folding, file
and terminal requests served in a real container (never on the host), and mode: acp in the
roster."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from crowdtui.hub.acp.connection import MAX_LINE, Connection, ConnectionClosed, RpcError
from crowdtui.hub.acp.conversation import Conversation


def wire() -> tuple[Connection, list[dict]]:
    sent: list[dict] = []
    conn = Connection(lambda data: sent.append(json.loads(data)))
    return conn, sent


def line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def test_answers_match_requests_and_replayed_ids_are_dropped():
    conn, sent = wire()
    asking = asyncio.create_task(conn.request("session/new", {"cwd": "/w"}))
    await asyncio.sleep(0)
    rid = sent[0]["id"]
    answer = line({"jsonrpc": "2.0", "id": rid, "result": {"sessionId": "s1"}})
    conn.feed(answer[:7])
    conn.feed(answer[7:] + answer)  # split across reads, then the same answer replayed
    assert await asking == {"sessionId": "s1"}
    assert conn.refused == 1
    conn.feed(b"not json\n" + line({"jsonrpc": "2.0", "id": 999, "result": {}}) + b"[1,2]\n")
    assert conn.refused == 4


async def test_a_line_over_the_bound_is_dropped_whole_and_the_next_one_read():
    conn, sent = wire()
    seen = []
    conn.on_notification = lambda method, params: seen.append(method)
    chunk = b"x" * (1024 * 1024)
    for _ in range(MAX_LINE // len(chunk) + 2):
        conn.feed(chunk)
    assert len(conn._buffer) <= MAX_LINE
    conn.feed(b"tail\n" + line({"jsonrpc": "2.0", "method": "session/update", "params": {}}))
    assert seen == ["session/update"] and conn.refused == 1


async def test_the_agents_requests_are_served_and_errors_answered():
    conn, sent = wire()

    async def serve(method, params):
        if method == "fs/read_text_file":
            return {"content": "hi"}
        raise RpcError(-32601, f"{method} is not served")

    conn.on_request = serve
    conn.feed(line({"jsonrpc": "2.0", "id": 7, "method": "fs/read_text_file", "params": {"path": "/a"}}))
    conn.feed(line({"jsonrpc": "2.0", "id": "x", "method": "evil/rm", "params": {}}))
    conn.feed(line({"jsonrpc": "2.0", "id": True, "method": "fs/read_text_file", "params": {}}))  # not an id
    for _ in range(20):
        await asyncio.sleep(0)
    assert {"jsonrpc": "2.0", "id": 7, "result": {"content": "hi"}} in sent
    assert any(m.get("id") == "x" and m["error"]["code"] == -32601 for m in sent)
    assert conn.refused == 1


async def test_closing_fails_waiting_requests():
    conn, _ = wire()
    asking = asyncio.create_task(conn.request("session/prompt", {}))
    await asyncio.sleep(0)
    conn.close()
    with pytest.raises(ConnectionClosed):
        await asking


def test_the_conversation_folds_chunks_plans_and_tool_calls():
    c = Conversation()
    c.apply({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "Hel"}})
    c.apply({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "lo"}})
    c.apply({"sessionUpdate": "plan", "entries": [{"content": "write", "status": "pending", "priority": "high"}]})
    c.apply({"sessionUpdate": "tool_call", "toolCallId": "t1", "title": "Write /x", "kind": "edit",
             "status": "pending", "_meta": {"claudeCode": {"toolName": "mcp__acp__Write"}},
             "content": [{"type": "diff", "path": "/x", "oldText": None, "newText": "a\n"}]})
    c.apply({"sessionUpdate": "tool_call_update", "toolCallId": "t1", "status": "completed"})
    c.apply({"sessionUpdate": "tool_call_update", "toolCallId": "t1", "status": "exploded"})  # not a status
    c.apply({"sessionUpdate": "something_new"})
    c.apply({"sessionUpdate": "tool_call"})  # no id
    [message, plan, call] = c.entries
    assert message.text == "Hello" and plan.entries[0]["content"] == "write"
    assert (call.status, call.tool, call.diffs()[0]["new"]) == ("completed", "mcp__acp__Write", "a\n")
    assert c.ignored == 2


def test_mode_acp_needs_a_runner_with_an_adapter(workspace):
    from crowdtui.roster import load_roster

    for name, runner in (("a", "claude-code"), ("b", "codex"), ("c", "script"), ("e", "gemini")):
        (workspace.agents_dir / name).mkdir(parents=True)
        (workspace.agents_dir / name / "AGENT.md").write_text(f"---\nname: {name}\nrunner: {runner}\nmode: acp\n---\n")
    (workspace.agents_dir / "d").mkdir()
    (workspace.agents_dir / "d" / "AGENT.md").write_text("---\nname: d\nmode: chatty\n---\n")
    roster = load_roster(workspace)
    assert roster.get("a").mode == "acp" and roster.get("e").mode == "acp"
    problems = {p.file.split("/")[1]: str(p) for p in roster.problems}
    assert "runner codex has no Agent Client Protocol adapter" in problems["b"]
    assert "runner script has no Agent Client Protocol adapter" in problems["c"]
    assert "key 'mode'" in problems["d"]
    assert "e" not in problems
    from crowdtui.runners import runner_named

    command = runner_named("gemini").acp_command(roster.get("e"), {})
    assert command[0] == "crowd-gemini" and "--acp" in command  # Gemini CLI is its own ACP agent
    assert runner_named("codex").acp_command(roster.get("e"), {}) is None  # codex: no adapter yet


@pytest.mark.docker
async def test_files_and_terminals_are_served_inside_the_container(workspace, store, agent_image, docker_client):
    from crowdtui.hub.acp.in_container import InContainer
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.container_spec import agent_user
    from crowdtui.runtime.containers import Runtime

    (workspace.agents_dir / "box").mkdir(parents=True)
    (workspace.agents_dir / "box" / "AGENT.md").write_text("---\nname: box\n---\n")
    roster = load_roster(workspace)
    await sync_roster(store, roster)
    runtime = Runtime(workspace, store=store, client=docker_client)
    info = await runtime.start(roster.get("box"))
    side = InContainer(docker_client, info.container_id, user=agent_user(), workdir="/tmp")
    try:
        text = "".join(f"line {i} é\n" for i in range(1, 6))
        assert await side.write_text_file({"path": "/tmp/deep/note.txt", "content": text}) == {}
        assert not Path("/tmp/deep/note.txt").exists()  # never on the host
        assert (await side.read_text_file({"path": "/tmp/deep/note.txt"}))["content"] == text
        assert (await side.read_text_file({"path": "/tmp/deep/note.txt", "line": 2, "limit": 2}))["content"] == \
            "line 2 é\nline 3 é\n"
        for bad in ({"path": "relative.txt"}, {"path": "/tmp/a\x00b"}, {"path": 5}):
            with pytest.raises(RpcError, match="absolute path"):
                await side.read_text_file(bad)
        with pytest.raises(RpcError, match="cannot write /etc/passwd"):  # the agent's user, read-only root
            await side.write_text_file({"path": "/etc/passwd", "content": "x"})
        with pytest.raises(RpcError, match="cannot read /nope"):
            await side.read_text_file({"path": "/nope"})
        term = await side.create_terminal({"command": "sh", "args": ["-c", "echo out; echo err >&2; id -u; exit 3"],
                                           "outputByteLimit": 1000})
        assert await side.wait_for_terminal_exit(term) == {"exitCode": 3, "signal": None}
        out = await side.terminal_output(term)
        # stdout and stderr are two streams: their order between each other is not kept
        assert sorted(out["output"].split()) == sorted(["out", "err", agent_user().split(":")[0]])
        assert out["exitStatus"] == {"exitCode": 3, "signal": None} and out["truncated"] is False
        line = await side.create_terminal({"command": "cd /tmp && echo one && pwd"})  # a shell command line
        await side.wait_for_terminal_exit(line)
        assert (await side.terminal_output(line))["output"].split() == ["one", "/tmp"]
        big = await side.create_terminal({"command": "sh", "args": ["-c", "yes ééé | head -c 50000"],
                                          "outputByteLimit": 100})
        await side.wait_for_terminal_exit(big)
        got = await side.terminal_output(big)
        assert got["truncated"] and len(got["output"].encode()) <= 100 and "\ufffd" not in got["output"]
        long = await side.create_terminal({"command": "sleep", "args": ["600"]})
        await side.kill_terminal(long)
        await asyncio.wait_for(side.wait_for_terminal_exit(long), 20)
        await side.release_terminal(long)
        with pytest.raises(RpcError, match="no such terminal"):
            await side.terminal_output(long)
    finally:
        await side.close()
        await runtime.remove("box")
