"""Grant bypasses and audit dodges (issue 18, items 3 and 6), spoken as a hostile agent speaks
them: raw JSON-RPC lines on its own MCP socket, to a real hub over a real store file (and the
main ones from inside a real agent container, on /run/crowd/mcp.sock).

Each bypass that once passed a narrowing rule (values the SDK coerces, a list with one bad
element, a JSON string that becomes a list, another case of a document id) is now denied
and recorded as ``hub.denied``; argument keys a tool does not have are refused; a call with
hundreds of extra keys, a huge key name or a huge value is refused or audited, never
silent; and a call whose audit record cannot be written does not run.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from crowdtui.hub.tools import DENIED, INVALID_PARAMS
from crowdtui.roster import AgentDef
from qms.events import MAX_DETAIL_BYTES

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "mallory", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

MALLORY_GRANTS = (
    "*",
    "!route_document(assignees=operator)",
    "!read_document(version=1)",
    "!get_messages(unread_only=False)",
    "!read_document(doc_id=SOP-003)",
)
# name, path, tier, parent, grants
CREW = [
    ("lead", "lead", 0, None, ()),
    ("worker", "lead/worker", 1, "lead", ()),
    ("deep", "lead/worker/deep", 2, "worker", ()),
    ("mallory", "mallory", 0, None, MALLORY_GRANTS),
    ("picky", "picky", 0, None, ("read_document", "route_document(assignees=lead)")),
]


class Raw:
    """One MCP session as newline-delimited JSON-RPC on an agent's socket, no client library."""

    def __init__(self, path):
        self.path = path
        self.next_id = 1

    async def __aenter__(self):
        from crowdtui.hub.unix_transport import connect_unix

        self.reader, self.writer = await asyncio.open_unix_connection(sock=connect_unix(self.path), limit=1 << 24)
        await self.send(INIT)
        await self.send(INITIALIZED)
        assert "result" in await self.reply(0)
        return self

    async def __aexit__(self, *exc):
        self.writer.close()

    async def send(self, frame: dict) -> None:
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await self.writer.drain()

    async def reply(self, rid) -> dict:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 60)
            assert line, "the hub closed the session instead of answering"
            msg = json.loads(line)
            if msg.get("id") == rid:
                return msg

    async def call(self, tool: str, arguments) -> dict:
        rid, self.next_id = self.next_id, self.next_id + 1
        await self.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                         "params": {"name": tool, "arguments": arguments}})
        return await self.reply(rid)


@pytest.fixture
async def crew(workspace):
    from qms import Store

    from crowdtui.hub.hub import Hub

    store = await Store.open(workspace.db_path)
    defs = {}
    for name, rel, tier, parent, grants in CREW:
        await store.upsert_agent(name, path=rel, tier=tier, parent=parent, description=f"the {name}")
        defs[name] = AgentDef(
            name=name, file=workspace.agents_dir / rel / "AGENT.md", rel_path=rel, tier=tier, parent=parent,
            children=tuple(n for n, _, _, p, _ in CREW if p == name), description=f"the {name}", grants=grants,
        )
    for title in ("one", "two", "three"):  # SOP-001..003, the lead's
        await store.create_document("lead", "SOP", title, f"content of {title}")
    own = await store.create_document("mallory", "SOP", "mine", "mallory's draft")  # SOP-004
    assert own.id == "SOP-004"
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    try:
        yield hub, store
    finally:
        await hub.stop()
        await store.close()


async def audit(store, actor, kinds=("hub.denied", "hub.calling", "hub.call")):
    return [e for e in await store.events_after(0, limit=100_000, kinds=list(kinds)) if e.actor == actor]


def detail_bytes(event) -> int:
    return len(json.dumps(event.detail, sort_keys=True).encode())


BYPASSES = [
    # (tool, arguments, the rule that must deny it)
    ("route_document", {"doc_id": "SOP-004", "kind": "review", "assignees": ["lead", "operator"]},
     "!route_document(assignees=operator)"),
    ("route_document", {"doc_id": "SOP-004", "kind": "review", "assignees": ["me", "operator"]},
     "!route_document(assignees=operator)"),
    ("route_document", {"doc_id": "SOP-004", "kind": "review", "assignees": '["operator"]'},
     "!route_document(assignees=operator)"),
    ("read_document", {"doc_id": "SOP-001", "version": 1.0}, "!read_document(version=1)"),
    ("read_document", {"doc_id": "SOP-001", "version": "01"}, "!read_document(version=1)"),
    ("read_document", {"doc_id": "SOP-001", "version": True}, "!read_document(version=1)"),
    ("get_messages", {"unread_only": 0}, "!get_messages(unread_only=False)"),
    ("get_messages", {"unread_only": "no"}, "!get_messages(unread_only=False)"),
    ("get_messages", {"unread_only": "false"}, "!get_messages(unread_only=False)"),
    ("read_document", {"doc_id": "sop-003"}, "!read_document(doc_id=SOP-003)"),
    ("read_document", {"doc_id": "Sop-003", "version": "2"}, "!read_document(doc_id=SOP-003)"),
]


async def test_every_known_bypass_of_a_narrowing_rule_is_denied_and_recorded(crew):
    hub, store = crew
    await store.send_message("lead", "mallory", "read me")
    path = await hub.open_door("mallory")
    async with Raw(path) as s:
        for tool, args, rule in BYPASSES:
            reply = await s.call(tool, args)
            assert "error" in reply, f"{tool}({args}) passed: {reply}"
            assert reply["error"]["code"] == DENIED
            assert f"denied by your grant rule {rule!r}" in reply["error"]["message"], reply
        # the same tools with values the rules leave alone still work
        controls = [
            ("read_document", {"doc_id": "SOP-001"}),
            ("read_document", {"doc_id": "sop-002"}),  # SOP-002: not the denied id
            ("get_messages", {"unread_only": "yes"}),
            ("get_messages", {}),  # the default, true
            ("route_document", {"doc_id": "SOP-004", "kind": "review", "assignees": '["lead"]'}),
        ]
        for tool, args in controls:
            reply = await s.call(tool, args)
            assert "result" in reply and reply["result"]["isError"] is False, (tool, args, reply)
    denied = await audit(store, "mallory", ["hub.denied"])
    assert [(e.subject, e.detail["reason"]) for e in denied] == [
        (tool, f"{tool} is denied by your grant rule {rule!r}; ask the operator") for tool, _, rule in BYPASSES
    ]
    assert [e.subject for e in await audit(store, "mallory", ["hub.call"])] == [t for t, _ in controls]
    # nothing was routed to the operator: only the lead got the review task
    assert [m.body for m in await store.inbox("operator")] == []
    lead_tasks = [m for m in await store.inbox("lead") if "SOP-004" in m.body]
    assert len(lead_tasks) == 1


async def test_over_a_list_an_allow_rule_needs_every_element(crew):
    hub, store = crew
    path = await hub.open_door("picky")
    await store.create_document("picky", "SOP", "picky's", "draft")  # SOP-005
    async with Raw(path) as s:
        for assignees in (["lead", "operator"], ["operator"], ["lead", "lead-x"], '["lead","mallory"]'):
            reply = await s.call("route_document", {"doc_id": "SOP-005", "kind": "review", "assignees": assignees})
            assert reply["error"]["code"] == DENIED and "no grant rule of yours allows" in reply["error"]["message"]
        reply = await s.call("route_document", {"doc_id": "SOP-005", "kind": "review", "assignees": ["lead"]})
        assert reply["result"]["isError"] is False
    assert len(await audit(store, "picky", ["hub.denied"])) == 4
    assert [m.body for m in await store.inbox("operator")] == [] and await store.inbox("mallory") == []


async def test_unknown_argument_keys_are_refused_and_wrong_types_say_so(crew):
    hub, store = crew
    path = await hub.open_door("mallory")
    async with Raw(path) as s:
        reply = await s.call("send_message", {"to": "lead", "body": "as the operator", "from": "operator"})
        assert reply["error"]["code"] == INVALID_PARAMS
        message = reply["error"]["message"]
        assert "send_message has no parameter 'from'" in message and "body, priority, thread, to" in message
        reply = await s.call("discover_agents", {"as": "operator"})
        assert "discover_agents has no parameter 'as'; its parameters are: none" in reply["error"]["message"]
        reply = await s.call("get_messages", {"limit": "lots"})
        assert reply["error"]["code"] == INVALID_PARAMS
        assert reply["error"]["message"].startswith("wrong arguments for get_messages: limit: ")
        reply = await s.call("route_document", {"doc_id": "SOP-004", "kind": "review", "assignees": '{"a": 1}'})
        assert reply["error"]["message"].startswith("wrong arguments for route_document: assignees")
    assert await store.inbox("lead") == []
    await hub.audit.drain()  # refusals are written in groups (at most 100 ms later)
    denied = await audit(store, "mallory")
    assert [(e.kind, e.subject) for e in denied] == [
        ("hub.denied", "send_message"), ("hub.denied", "discover_agents"),
        ("hub.denied", "get_messages"), ("hub.denied", "route_document")]
    assert denied[0].detail["args"]["from"] == "operator"  # what was sent is on record


def extra_keys(n: int, value_chars: int = 200) -> dict:
    return {f"extra_{i:04d}_" + "k" * 40: "v" * value_chars for i in range(n)}


async def test_a_call_with_700_extra_keys_is_refused_and_recorded(crew):
    hub, store = crew
    mallory = await hub.open_door("mallory")
    deep = await hub.open_door("deep")
    async with Raw(mallory) as s:
        for tool, args in [("read_document", {"doc_id": "SOP-001"}),
                           ("send_message", {"to": "lead", "body": "sneaked past the audit"})]:
            reply = await s.call(tool, {**args, **extra_keys(700)})
            assert reply["error"]["code"] == INVALID_PARAMS and "and 695 more" in reply["error"]["message"]
    async with Raw(deep) as s:  # refused for its tier before its keys are even looked at
        reply = await s.call("observe", {"agent": "lead", **extra_keys(700)})
        assert reply["error"]["code"] == DENIED
    assert await store.inbox("lead") == []
    await hub.audit.drain()  # refusals are written in groups (at most 100 ms later)
    events = await audit(store, "mallory") + await audit(store, "deep")
    assert [(e.actor, e.kind, e.subject) for e in events] == [
        ("mallory", "hub.denied", "read_document"), ("mallory", "hub.denied", "send_message"),
        ("deep", "hub.denied", "observe")]
    sent = {"read_document": 701, "send_message": 702, "observe": 701}
    for e in events:
        assert detail_bytes(e) <= MAX_DETAIL_BYTES
        n = sent[e.subject]
        assert len(e.detail["args"]) == 33 and e.detail["args"]["..."] == f"{n - 32} more keys ({n} in all)"


async def test_a_huge_key_name_or_value_is_refused_or_audited_never_silent(crew):
    hub, store = crew
    path = await hub.open_door("mallory")
    huge_key = "k" * (900 * 1024)
    async with Raw(path) as s:
        reply = await s.call("send_message", {"to": "lead", "body": "hi", huge_key: 1})
        assert reply["error"]["code"] == INVALID_PARAMS
        assert len(reply["error"]["message"]) < 1000  # the key is not echoed whole
        reply = await s.call(huge_key[:200], {})  # a huge tool name
        assert reply["error"]["code"] == DENIED
        content = "c" * (900 * 1024)
        reply = await s.call("create_document", {"doc_type": "SOP", "title": "big", "content": content})
        assert reply["result"]["isError"] is False  # allowed (under the 1 MiB limit), and audited
        reply = await s.call("send_message", {"to": "lead", "body": "b" * (900 * 1024)})
        assert "error" in reply  # over the 64 KiB message limit: the tool refuses, the call is audited
    events = await audit(store, "mallory")
    assert [(e.kind, e.subject) for e in events] == [
        ("hub.denied", "send_message"), ("hub.denied", "bad-tool-name"),
        ("hub.calling", "create_document"), ("hub.call", "create_document"),
        ("hub.calling", "send_message"), ("hub.call", "send_message")]
    assert all(detail_bytes(e) <= MAX_DETAIL_BYTES for e in events)
    assert any(k.endswith(f"... ({len(huge_key)} chars)") for k in events[0].detail["args"])
    assert events[2].detail["args"]["content"].endswith(f"... ({len(content)} chars)")
    assert events[3].detail["ok"] is True and events[5].detail["ok"] is False


async def test_the_audit_record_is_written_before_the_call_runs(crew):
    hub, store = crew
    path = await hub.open_door("mallory")
    async with Raw(path) as s:
        assert (await s.call("send_message", {"to": "lead", "body": "on the record"}))["result"]["isError"] is False
    events = [e for e in await store.events_after(0, limit=100_000) if e.actor == "mallory"]
    kinds = [e.kind for e in events]
    assert kinds.index("hub.calling") < kinds.index("message.sent") < kinds.index("hub.call")


async def test_a_call_whose_audit_record_cannot_be_written_does_not_run(crew, workspace):
    hub, store = crew
    path = await hub.open_door("mallory")
    db = sqlite3.connect(workspace.db_path)
    db.execute("CREATE TRIGGER audit_full BEFORE INSERT ON events WHEN NEW.kind = 'hub.calling' "
               "BEGIN SELECT RAISE(ABORT, 'no room for the audit'); END")
    db.commit()
    try:
        async with Raw(path) as s:
            reply = await s.call("send_message", {"to": "lead", "body": "unaudited"})
            assert reply["error"]["code"] == -32603
            assert "could not write the audit record of this call, so it did not run it" in reply["error"]["message"]
            db.execute("DROP TRIGGER audit_full")
            db.commit()
            reply = await s.call("send_message", {"to": "lead", "body": "audited"})
            assert reply["result"]["isError"] is False
    finally:
        db.close()
    assert [m.body for m in await store.inbox("lead")] == ["audited"]  # the first one never ran
    events = await audit(store, "mallory")
    assert [(e.kind, e.subject) for e in events] == [
        ("hub.denied", "send_message"), ("hub.calling", "send_message"), ("hub.call", "send_message")]
    assert "audit record" in events[0].detail["reason"]


# ---- from inside a real agent container -------------------------------------------------------

IN_CONTAINER = r'''
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/crowd/mcp.sock")
f = s.makefile("rwb")
def send(o):
    f.write(json.dumps(o).encode() + b"\n"); f.flush()
def reply(i):
    while True:
        m = json.loads(f.readline())
        if m.get("id") == i:
            return m
send(json.loads(sys.argv[1])); reply(0)
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
out = []
for i, (name, args) in enumerate(json.loads(sys.argv[2]), 1):
    send({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args}})
    out.append(reply(i))
print(json.dumps(out))
'''


@pytest.mark.docker
async def test_from_inside_a_container_the_bypasses_are_denied_and_recorded(workspace, agent_image):
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime

    for rel, front in {"lead": "name: lead\ndescription: leads\n",
                       "mallory": "name: mallory\ndescription: hostile\ncommand: [crowd-agent, --role, interactive]\n"
                                  f"grants: {json.dumps(list(MALLORY_GRANTS))}\n"}.items():
        folder = workspace.agents_dir / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "AGENT.md").write_text(f"---\n{front}---\nA test agent.\n")
    roster = load_roster(workspace)
    assert not roster.problems, roster.problems
    store = await Store.open(workspace.db_path)
    await sync_roster(store, roster)
    await store.create_document("mallory", "SOP", "mine", "mallory's draft")  # SOP-001
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace)
    try:
        await hub.open_door("mallory")
        await runtime.start(roster.agents["mallory"])
        container = await runtime.container("mallory")
        calls = [
            ["route_document", {"doc_id": "SOP-001", "kind": "review", "assignees": ["lead", "operator"]}],
            ["route_document", {"doc_id": "sop-001", "kind": "review", "assignees": '["operator"]'}],
            ["read_document", {"doc_id": "SOP-001", "version": "01"}],
            ["get_messages", {"unread_only": "no"}],
            ["send_message", {"to": "lead", "body": "x", **extra_keys(700, 20)}],
            ["read_document", {"doc_id": "SOP-001"}],
        ]
        code, output = await asyncio.to_thread(
            container.exec_run, ["python3", "-c", IN_CONTAINER, json.dumps(INIT), json.dumps(calls)], user="1000:1000")
        assert code == 0, output.decode()
        replies = json.loads(output.decode().strip().splitlines()[-1])
    finally:
        try:
            await runtime.remove("mallory")
        finally:
            await hub.stop()
    try:
        assert [r.get("error", {}).get("code") for r in replies] == [DENIED] * 4 + [INVALID_PARAMS, None]
        assert replies[-1]["result"]["isError"] is False
        events = await audit(store, "mallory")
        assert [(e.kind, e.subject) for e in events] == [
            ("hub.denied", "route_document"), ("hub.denied", "route_document"), ("hub.denied", "read_document"),
            ("hub.denied", "get_messages"), ("hub.denied", "send_message"),
            ("hub.call", "read_document")]  # read-only: recorded once, no hub.calling
        assert (await store.get_document("SOP-001")).state == "DRAFT"  # never routed
        assert await store.inbox("operator") == [] and await store.inbox("lead") == []
    finally:
        await store.close()
