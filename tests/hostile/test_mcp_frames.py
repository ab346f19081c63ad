"""Hostile JSON-RPC frames on an agent's MCP socket (below the MCP client): each one is answered
with a clear error or ignored, the session keeps working, and other agents' data is untouched."""

from __future__ import annotations

import asyncio
import json

from hypothesis import strategies as st

from crowdtui.roster import AgentDef

from .strategies import HOSTILE_TEXT, HOSTILE_VALUE, examples, one_line

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
METHODS = ["tools/call", "tools/list", "ping", "resources/list", "prompts/get", "notifications/cancelled",
           "completion/complete", "logging/setLevel", "../tools/call", "", "tools/call\x00"]

FRAMES = st.one_of(
    # JSON-RPC shaped, hostile inside
    st.fixed_dictionaries(
        {"jsonrpc": st.sampled_from(["2.0", "1.0", None, 2]), "method": st.one_of(st.sampled_from(METHODS), HOSTILE_TEXT)},
        optional={"id": st.one_of(st.integers(min_value=1000, max_value=2**53), HOSTILE_TEXT, st.none(), st.lists(st.none())),
                  "params": st.one_of(HOSTILE_VALUE, st.fixed_dictionaries(
                      {"name": st.one_of(st.sampled_from(["send_message", "checkout_document", "observe"]), HOSTILE_TEXT)},
                      optional={"arguments": HOSTILE_VALUE}))},
    ).map(lambda d: json.dumps(d).encode()),
    HOSTILE_VALUE.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")),
)


async def test_hostile_frames_on_the_mcp_socket(workspace):
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.hub.unix_transport import connect_unix

    store = await Store.open(workspace.db_path)
    defs = {n: AgentDef(name=n, file=workspace.agents_dir / n / "AGENT.md", rel_path=n, tier=0) for n in ("a", "b")}
    for n in defs:
        await store.upsert_agent(n, path=n, tier=0)
    kept = await store.send_message("b", "b", "b's own note")
    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    try:
        path = await hub.open_door("a")
        reader, writer = await asyncio.open_unix_connection(sock=connect_unix(path), limit=1 << 24)
        frames = [json.dumps(INIT).encode(), json.dumps(INITIALIZED).encode()] + examples(FRAMES, 200)
        final = {"jsonrpc": "2.0", "id": "final-call", "method": "tools/call",
                 "params": {"name": "send_message", "arguments": {"to": "b", "body": "still works"}}}
        writer.write(b"\n".join(frames) + b"\n" + json.dumps(final).encode() + b"\n")
        await writer.drain()
        replies = []
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            assert line, "the hub closed the session instead of answering"
            reply = json.loads(line)  # every answer is JSON
            replies.append(reply)
            if isinstance(reply, dict) and reply.get("id") == "final-call":
                break
        writer.close()
        assert replies[-1]["result"]["isError"] is False
        errors = [r["error"] for r in replies if isinstance(r, dict) and "error" in r]
        assert errors  # hostile frames were refused, not silently swallowed, at least some of them
        for e in errors:
            assert isinstance(e.get("code"), int) and one_line(str(e.get("message", ""))), e
        inbox = await store.inbox("b")
        assert [m.body for m in inbox if m.id == kept[0].id] == ["b's own note"]
        assert [m.body for m in inbox if m.sender == "a"][-1:] == ["still works"]
        assert all(m.sender in ("a", "b") for m in inbox)  # nobody spoke as someone else
    finally:
        await hub.stop()
        await store.close()
