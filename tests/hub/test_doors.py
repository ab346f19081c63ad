"""A real MCP client on the host over an agent's own socket: identity, grants, events, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.hub.unix_transport import connect_unix, unix_client

from .conftest import structured


async def events(store, kind, actor=None):
    return [e for e in await store.events_after(0, limit=10000, kinds=[kind]) if actor is None or e.actor == actor]


async def test_door_lists_only_the_agents_permitted_tools(hub):
    deep = await hub.open_door("deep")
    narrow = await hub.open_door("narrow")
    lead = await hub.open_door("lead")
    async with Client(unix_client(lead)) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert {"observe", "delegate", "escalate", "send_message", "checkin_document"} <= names
    async with Client(unix_client(deep)) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert "observe" not in names and "send_message" in names and "checkout_document" in names
    async with Client(unix_client(narrow)) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert names == {"send_message", "get_messages", "mark_messages_read"}


async def test_calls_act_as_the_door_owner_whatever_the_arguments_say(hub, store):
    path = await hub.open_door("worker")
    await store.send_message("lead", "reviewer", "private to reviewer")
    async with Client(unix_client(path)) as c:
        # arguments naming someone else are not parameters: refused (issue 18), not ignored
        for tool, args in [("send_message", {"to": "lead", "body": "hello", "from": "reviewer", "user": "reviewer", "as": "reviewer"}),
                           ("get_messages", {"unread_only": False, "as": "reviewer", "name": "reviewer"}),
                           ("create_document", {"doc_type": "SOP", "title": "Mine", "author": "reviewer"})]:
            with pytest.raises(MCPError) as err:
                await c.call_tool(tool, args)
            assert f"{tool} has no parameter" in str(err.value)
        await hub.audit.drain()  # refusals are written in groups (at most 100 ms later)
        assert len(await events(store, "hub.denied", "worker")) == 3
        r = await c.call_tool("send_message", {"to": "lead", "body": "hello"})
        assert structured(r)["recipients"] == ["lead"]
        inbox = structured(await c.call_tool("get_messages", {"unread_only": False}))
        doc = structured(await c.call_tool("create_document", {"doc_type": "SOP", "title": "Mine"}))
    [msg] = await store.inbox("lead")
    assert msg.sender == "worker" and msg.body == "hello"
    assert inbox["messages"] == []  # the worker's inbox, not the reviewer's
    assert doc["author"] == "worker"
    assert [m.read_at for m in await store.inbox("reviewer")] == [None]
    await hub.audit.drain()  # get_messages is read-only: its record is written in a group
    calls = await events(store, "hub.call", "worker")
    assert [e.subject for e in calls] == ["send_message", "get_messages", "create_document"]
    assert all(e.detail["ok"] and e.detail["via"] == "socket" for e in calls)
    assert calls[0].detail["grant"] == "tier 1 default"  # why it was allowed


async def test_deep_agent_is_refused_a_tool_it_lacks_and_the_refusal_is_an_event(hub, store):
    path = await hub.open_door("deep")
    async with Client(unix_client(path)) as c:
        assert "observe" not in {t.name for t in (await c.list_tools()).tools}
        with pytest.raises(MCPError) as err:
            await c.call_tool("observe", {"agent": "lead"})
        assert "not available at tier 2" in str(err.value)
        with pytest.raises(MCPError) as err:
            await c.call_tool("send_message", {"to": "*", "body": "everyone!"})
        # still serving after refusals
        assert structured(await c.call_tool("send_message", {"to": "worker", "body": "ok"}))["sent"] == 1
    denied = await events(store, "hub.denied", "deep")
    assert [e.subject for e in denied] == ["observe", "send_message"]
    assert "tier 2" in denied[0].detail["reason"]
    assert [m.sender for m in await store.inbox("lead")] == []  # no broadcast happened


async def test_grant_rules_narrow_what_a_definition_allows(hub, store):
    path = await hub.open_door("narrow")
    async with Client(unix_client(path)) as c:
        await c.call_tool("send_message", {"to": "lead", "body": "allowed"})
        with pytest.raises(MCPError) as err:
            await c.call_tool("send_message", {"to": "reviewer", "body": "not allowed"})
        assert "no grant rule" in str(err.value)
        with pytest.raises(MCPError):
            await c.call_tool("create_document", {"doc_type": "SOP", "title": "x"})
    assert [m.body for m in await store.inbox("lead")] == ["allowed"]
    assert await store.inbox("reviewer") == []
    assert await store.list_documents() == []


async def test_delegate_only_to_children_and_escalate_only_to_the_parent(hub, store):
    lead = await hub.open_door("lead")
    deep = await hub.open_door("deep")
    async with Client(unix_client(lead)) as c:
        r = structured(await c.call_tool("delegate", {"child": "worker", "prompt": "draft the SOP"}))
        assert r["delegated_to"] == "worker"
        with pytest.raises(MCPError) as err:
            await c.call_tool("delegate", {"child": "deep", "prompt": "skip a level"})
        assert "not a child of lead" in str(err.value) and "worker" in str(err.value)
        with pytest.raises(MCPError):
            await c.call_tool("delegate", {"child": "reviewer", "prompt": "a peer"})
    async with Client(unix_client(deep)) as c:
        with pytest.raises(MCPError) as err:
            await c.call_tool("escalate", {"prompt": "over my parent's head", "to": "lead"})
        assert "only to its parent worker" in str(err.value)
        with pytest.raises(MCPError):
            await c.call_tool("delegate", {"child": "worker", "prompt": "upwards"})
        r = structured(await c.call_tool("escalate", {"prompt": "stuck"}))
        assert r["escalated_to"] == "worker"
    worker_inbox = await store.inbox("worker")
    assert [(m.sender, m.body, m.priority) for m in worker_inbox] == [("lead", "draft the SOP", "high"), ("deep", "stuck", "high")]
    assert await store.inbox("deep") == [] and await store.inbox("reviewer") == []
    assert [m.body for m in await store.inbox("lead")] == []
    assert {e.subject for e in await events(store, "hub.denied")} == set()  # structural refusals are failed calls
    failed = [e for e in await events(store, "hub.call") if not e.detail["ok"]]
    assert len(failed) == 4


async def test_escalate_from_a_top_level_agent_reaches_the_operator_and_status_is_recorded(hub, store):
    path = await hub.open_door("lead")
    async with Client(unix_client(path)) as c:
        assert structured(await c.call_tool("escalate", {"prompt": "need a decision"}))["escalated_to"] == "operator"
        await c.call_tool("set_status", {"state": "blocked", "note": "waiting for the operator"})
        with pytest.raises(MCPError) as err:
            await c.call_tool("set_status", {"state": "sleeping"})
        assert "state" in str(err.value)
        seen = structured(await c.call_tool("observe", {"agent": "worker"}))
    assert [m.body for m in await store.inbox("operator")] == ["need a decision"]
    agent = await store.get_agent("lead")
    assert (agent.status, agent.status_note) == ("blocked", "waiting for the operator")
    assert seen["agent"]["name"] == "worker"


async def test_documents_through_the_door(hub, store):
    path = await hub.open_door("worker")
    async with Client(unix_client(path)) as c:
        doc = structured(await c.call_tool("create_document", {"doc_type": "SOP", "title": "Release"}))
        held = structured(await c.call_tool("checkout_document", {"doc_id": doc["id"]}))
        assert held["holder"] == "worker"
        v2 = structured(await c.call_tool("checkin_document", {"doc_id": doc["id"], "content": "step 1", "note": "first"}))
        assert v2["version"] == 2
        routed = structured(await c.call_tool("route_document", {"doc_id": doc["id"], "kind": "review", "assignees": ["reviewer"]}))
        assert routed["state"] == "IN_REVIEW"
        hist = structured(await c.call_tool("document_history", {"doc_id": doc["id"]}))
        assert [e["kind"] for e in hist["events"]][:3] == ["doc.created", "doc.checkout", "doc.checkin"]
        with pytest.raises(MCPError) as err:
            await c.call_tool("read_document", {"doc_id": "SOP-999"})
        assert "SOP-999" in str(err.value)
    [task] = await store.pending_tasks("reviewer")
    assert task.doc_id == doc["id"] and task.kind == "review"


async def test_second_connection_holding_a_lock_gets_a_conflict_naming_the_holder(hub, store):
    doc = await store.create_document("operator", "SOP", "Shared")
    a, b = await hub.open_door("worker"), await hub.open_door("lead")
    async with Client(unix_client(a)) as ca, Client(unix_client(b)) as cb:
        await ca.call_tool("checkout_document", {"doc_id": doc.id})
        with pytest.raises(MCPError) as err:
            await cb.call_tool("checkout_document", {"doc_id": doc.id})
        assert "worker" in str(err.value)


async def raw_exchange(path, payload: bytes, expect: int = 1, timeout: float = 10) -> list[dict]:
    sock = connect_unix(path)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 24)
    writer.write(payload)
    await writer.drain()
    out = []
    for _ in range(expect):
        out.append(json.loads(await asyncio.wait_for(reader.readline(), timeout)))
    writer.close()
    return out


INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).encode() + b"\n"
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'


async def test_malformed_and_oversized_input_gets_clear_errors_and_the_session_keeps_working(hub, store):
    path = await hub.open_door("worker")
    other = await hub.open_door("lead")
    too_big = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "send_message", "arguments": {"to": "lead", "body": "x" * (2 * 1024 * 1024)}}}).encode() + b"\n"
    send = json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "send_message", "arguments": {"to": "lead", "body": "after the junk"}}}).encode() + b"\n"
    replies = await raw_exchange(
        path, INIT + INITIALIZED + b"this is not json\n" + b'{"hello": "world"}\n' + too_big + send, expect=5
    )
    by_id = {}
    for r in replies:
        by_id.setdefault(r.get("id"), []).append(r)
    assert by_id[1][0]["result"]["serverInfo"]["name"] == "crowd"
    errors = [r["error"] for r in by_id[None]]
    assert errors[0]["code"] == -32700 and "not JSON" in errors[0]["message"]
    assert errors[1]["code"] == -32600 and "JSON-RPC" in errors[1]["message"]
    assert errors[2]["code"] == -32600 and "larger than" in errors[2]["message"]
    assert by_id[4][0]["result"]["isError"] is False
    assert [m.body for m in await store.inbox("lead")] == ["after the junk"]
    # a message over the store's 64 KiB limit (but under the line limit) is refused clearly
    async with Client(unix_client(path)) as c:
        with pytest.raises(MCPError) as err:
            await c.call_tool("send_message", {"to": "lead", "body": "y" * (100 * 1024)})
        assert "the limit is 65536 bytes" in str(err.value)
        with pytest.raises(MCPError) as err:
            await c.call_tool("get_messages", {"limit": "lots"})
        assert "wrong arguments for get_messages: limit" in str(err.value)
        with pytest.raises(MCPError) as err:
            await c.call_tool("no_such_tool", {})
        assert "unknown tool" in str(err.value)
    # the other agent's door never noticed
    async with Client(unix_client(other)) as c:
        assert len(structured(await c.call_tool("get_messages", {}))["messages"]) == 1


async def test_a_client_that_vanishes_mid_session_does_not_disturb_others(hub, store):
    path = await hub.open_door("worker")
    sock = connect_unix(path)
    sock.sendall(INIT + b'{"jsonrpc":"2.0","id":2,"method":"tools/list"')  # cut off mid-message
    sock.close()
    async with Client(unix_client(path)) as c:
        await c.call_tool("send_message", {"to": "lead", "body": "still here"})
    assert [m.body for m in await store.inbox("lead")] == ["still here"]


async def test_door_socket_is_connectable_by_the_container_user_and_mcp_json_points_at_the_bridge(hub, workspace):
    path = await hub.open_door("worker")
    assert path == workspace.ipc_dir("worker") / "mcp.sock"
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    st = os.stat(path)
    # owner only: no other host user may speak as the agent
    if os.geteuid() == 0:  # owned by the user agent containers run as
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o600)
    else:  # ours; agent containers run as our uid
        assert (st.st_uid, st.st_mode & 0o777) == (os.geteuid(), 0o600)
    config = json.loads((workspace.home_dir("worker") / ".mcp.json").read_text())
    assert config["mcpServers"]["crowd"] == {"command": "crowd-mcp-bridge"}
    await hub.close_door("worker")
    assert not path.exists()


async def test_mcp_json_keeps_the_agents_other_servers(hub, workspace):
    home = workspace.home_dir("lead")
    home.mkdir(parents=True, exist_ok=True)
    (home / ".mcp.json").write_text(json.dumps({"mcpServers": {"web": {"command": "web-mcp"}}}))
    await hub.open_door("lead")
    config = json.loads((home / ".mcp.json").read_text())
    assert config["mcpServers"] == {"web": {"command": "web-mcp"}, "crowd": {"command": "crowd-mcp-bridge"}}


async def test_unregistered_agents_get_no_door(hub):
    from crowdtui.hub.hub import HubError
    from qms.errors import InvalidInput

    with pytest.raises(HubError, match="no agent named 'ghost'"):
        await hub.open_door("ghost")
    with pytest.raises(InvalidInput):
        await hub.open_door("../lead")


async def test_only_one_hub_per_workspace(hub, workspace, store):
    from crowdtui.hub.hub import Hub
    from crowdtui.hub.hub_lock import HubAlreadyRunning

    second = Hub(workspace, store)
    with pytest.raises(HubAlreadyRunning) as err:
        await second.start()
    assert f"pid {os.getpid()}" in str(err.value)
    await hub.stop()
    await second.start()  # free again once the first stopped
    await second.stop()


async def test_invalid_grant_rules_refuse_everything_and_say_where_to_fix(workspace, store, definitions):
    import dataclasses

    from crowdtui.hub.hub import Hub

    definitions["worker"] = dataclasses.replace(definitions["worker"], grants=("send_message(to)",))
    async with Hub(workspace, store, definitions=definitions.get) as hub:
        path = await hub.open_door("worker")
        async with Client(unix_client(path)) as c:
            with pytest.raises(MCPError) as err:
                await c.call_tool("send_message", {"to": "lead", "body": "x"})
    assert "grant rules are invalid" in str(err.value) and "AGENT.md" in str(err.value)
    assert await store.inbox("lead") == []


async def test_get_messages_can_wait_for_the_next_message_instead_of_polling(hub, store):
    path = await hub.open_door("worker")
    async with Client(unix_client(path)) as c:
        empty = structured(await c.call_tool("get_messages", {"wait_seconds": 0.5}))
        assert empty["messages"] == []

        async def later():
            await asyncio.sleep(0.5)
            await store.send_message("lead", "worker", "arrived while you waited")
        sender = asyncio.create_task(later())
        got = structured(await c.call_tool("get_messages", {"wait_seconds": 30}))
        await sender
        assert [m["body"] for m in got["messages"]] == ["arrived while you waited"]
    await hub.audit.drain()  # read-only calls' records are written in groups
    waits = [e for e in await events(store, "hub.call", "worker") if e.subject == "get_messages"]
    assert len(waits) == 2  # one event per call, however long it waited


async def test_stopping_the_hub_ends_calls_that_are_still_waiting(workspace, store, definitions):
    from crowdtui.hub.hub import Hub

    hub = Hub(workspace, store, definitions=definitions.get)
    await hub.start()
    path = await hub.open_door("worker")
    sock = connect_unix(path)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    wait_call = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "get_messages", "arguments": {"wait_seconds": 60}}}).encode() + b"\n"
    writer.write(INIT + INITIALIZED + wait_call)
    await writer.drain()
    assert json.loads(await asyncio.wait_for(reader.readline(), 10))["id"] == 1
    await asyncio.sleep(0.3)  # the call is now waiting for mail
    await asyncio.wait_for(hub.stop(), 30)  # well under the call's 60 s wait
    rest = await asyncio.wait_for(reader.read(), 30)  # the connection ends
    assert b'"id":2' not in rest or b"error" in rest
    writer.close()
    assert not path.exists()
    # nothing of the stopped hub is still waiting: mail arriving now is not picked up by it
    await store.send_message("lead", "worker", "after the hub stopped")
    await asyncio.sleep(1.0)
    assert [e for e in await events(store, "hub.call", "worker")] == []


async def test_grant_changes_in_agent_md_apply_without_restarting_anything(workspace):
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.roster import load_roster, sync_roster

    from tests.waiting import wait_for

    from .conftest import write_roster

    write_roster(workspace, {"solo": "name: solo\ndescription: alone\n"})
    store = await Store.open(workspace.db_path)
    try:
        await sync_roster(store, load_roster(workspace))
        async with Hub(workspace, store) as hub:
            path = await hub.open_door("solo")
            async with Client(unix_client(path)) as c:
                await c.call_tool("create_document", {"doc_type": "SOP", "title": "allowed"})
                write_roster(workspace, {"solo": "name: solo\ndescription: alone\ngrants: [get_messages]\n"})

                async def refused():
                    try:
                        await c.call_tool("create_document", {"doc_type": "SOP", "title": "now refused"})
                    except MCPError as exc:
                        return "no grant rule" in str(exc)
                    return False
                assert await wait_for(refused, 30, interval=0.5, what="the new grant rules to apply")
                assert {t.name for t in (await c.list_tools()).tools} == {"get_messages"}
        assert [d.title for d in await store.list_documents()][0] == "allowed"
    finally:
        await store.close()
