"""Hostile arguments for every MCP tool, over an agent's real socket: a clear error or a sane
result, never a crash, never a change to what the caller does not own, never a file written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.roster import AgentDef

from .strategies import HOSTILE_TEXT, HOSTILE_VALUE, TRAVERSAL, examples, one_line

PER_TOOL = 12  # examples per tool (fixed seed): ~25 tools -> ~300 calls

CREW = [("lead", "lead", 0, None), ("worker", "lead/worker", 1, "lead"), ("reviewer", "reviewer", 0, None)]


def definitions(ws) -> dict[str, AgentDef]:
    return {
        name: AgentDef(name=name, file=ws.agents_dir / rel / "AGENT.md", rel_path=rel, tier=tier, parent=parent,
                       children=tuple(n for n, _, _, p in CREW if p == name), description=f"the {name}")
        for name, rel, tier, parent in CREW
    }


def value_for(name: str, schema: dict):
    """Hostile values for one property; sometimes right-typed, mostly not."""
    kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", []) if isinstance(s, dict)}
    options = [HOSTILE_VALUE, HOSTILE_TEXT]
    if name == "wait_seconds":  # a real long-poll: keep hostile numbers short, other types anything
        return st.one_of(HOSTILE_TEXT, st.none(), st.floats(max_value=0.05, allow_nan=False), st.lists(st.none()))
    if name.endswith("doc_id"):
        options.append(st.sampled_from(TRAVERSAL + ["SOP-001", "sop-001", "SOP-999999999999999999999"]))
    if {"integer", "number"} & kinds:
        options.append(st.integers())
    if "array" in kinds:
        options.append(st.lists(st.one_of(st.integers(), HOSTILE_TEXT), max_size=5))
    if "string" in kinds and "enum" in json.dumps(schema):
        options.append(st.text(max_size=12))
    return st.one_of(*options)


def arguments_for(schema: dict):
    props = schema.get("properties") or {}
    fields = {k: value_for(k, v if isinstance(v, dict) else {}) for k, v in props.items()}
    full = st.fixed_dictionaries({}, optional=fields)  # any subset: required ones may be missing
    extra = st.dictionaries(st.sampled_from(["from", "as", "agent_name", "__proto__", "../x", ""]),
                            HOSTILE_VALUE, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, full, extra)


def files_under(root: Path) -> set[str]:
    out = set()
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), root)
            if not rel.startswith(".crowd" + os.sep):
                out.add(rel)
    return out


async def test_every_tool_survives_hostile_arguments(workspace):
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.hub.unix_transport import unix_client

    store = await Store.open(workspace.db_path)
    defs = definitions(workspace)
    for name, rel, tier, parent in CREW:
        await store.upsert_agent(name, path=rel, tier=tier, parent=parent, description=f"the {name}")
    # what must survive: the reviewer's held document and the messages already sent
    doc = await store.create_document("reviewer", "SOP", "Precious", "precious content v1")
    await store.checkout(doc.id, "reviewer")
    before_doc = await store.get_document(doc.id)
    to_lead = await store.send_message("reviewer", "lead", "keep me")
    to_reviewer = await store.send_message("lead", "reviewer", "keep me too")
    files_before = files_under(workspace.root)
    reviewer_before = await store.get_agent("reviewer")

    hub = Hub(workspace, store, definitions=defs.get)
    await hub.start()
    calls = refused = 0
    try:
        path = await hub.open_door("lead")
        async with Client(unix_client(path)) as client:
            tools = (await client.list_tools()).tools
            assert len(tools) >= 20
            for tool in tools:
                for args in examples(arguments_for(tool.input_schema or {}), PER_TOOL):
                    calls += 1
                    shown = repr(args)[:300]
                    try:
                        result = await client.call_tool(tool.name, args)
                    except MCPError as exc:
                        refused += 1
                        message = exc.error.message
                        assert one_line(message), f"{tool.name}({shown}): {message!r}"
                        assert len(message) < 2000, f"{tool.name}({shown}): error is {len(message)} chars"
                    else:
                        assert not getattr(result, "is_error", False), f"{tool.name}({shown})"
            # the door still works for an ordinary call
            r = await client.call_tool("send_message", {"to": "worker", "body": "still here"})
            assert not r.is_error
    finally:
        await hub.stop()
    try:
        assert refused > calls // 2  # hostile input is mostly refused, not quietly accepted
        after = await store.get_document(doc.id)
        assert (after.content, after.version, after.holder, after.author, after.title) == (
            before_doc.content, before_doc.version, "reviewer", "reviewer", "Precious")
        assert [m.body for m in await store.inbox("lead") if m.id == to_lead[0].id] == ["keep me"]
        assert [m.body for m in await store.inbox("reviewer") if m.id == to_reviewer[0].id] == ["keep me too"]
        reviewer = await store.get_agent("reviewer")
        assert (reviewer.status, reviewer.status_note) == (reviewer_before.status, reviewer_before.status_note)
        assert files_under(workspace.root) == files_before  # no traversal wrote anything anywhere
        # every call was recorded, allowed or refused
        audited = [e for e in await store.events_after(0, limit=100000) if e.kind in ("hub.call", "hub.denied")]
        assert len(audited) >= calls
    finally:
        await store.close()

