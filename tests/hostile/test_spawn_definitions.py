"""Hostile definitions for ``spawn_agent`` over a tier-1 agent's real socket: every spawn is
refused with one clear line, or writes exactly one AGENT.md in a folder of the caller's that
loads in the roster as the caller's child with nothing more than the caller has; nothing is
written anywhere else."""

from __future__ import annotations

import asyncio
import os

from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.roster import KNOWN_KEYS, load_roster

from .strategies import HOSTILE_TEXT, HOSTILE_VALUE, TRAVERSAL, examples, one_line

PARENT = "name: mid\nresources: {cpus: 0.5, memory: 256m, pids: 64, disk: 64m}\ngrants: ['!observe', '*']\n"
KEY = st.one_of(st.sampled_from(KNOWN_KEYS + ("persona", "../x", "")), HOSTILE_TEXT)
SANE = st.fixed_dictionaries({}, optional={
    "command": st.just(["crowd-agent", "--role", "echo"]),
    "resources": st.fixed_dictionaries({}, optional={"memory": st.sampled_from(["64m", "1g"]),
                                                     "cpus": st.sampled_from([0.25, 2])}),
    "network": st.sampled_from(["none", "open"]),
    "env": st.dictionaries(st.from_regex("[A-Z]{1,5}", fullmatch=True), HOSTILE_TEXT, max_size=2),
    "grants": st.lists(st.sampled_from(["!observe", "observe", "!send_message(to=boss)"]), max_size=2),
    "description": HOSTILE_TEXT,
})
DEFINITION = st.one_of(st.none(), HOSTILE_VALUE, st.dictionaries(KEY, HOSTILE_VALUE, max_size=4), SANE, SANE)
NAME = st.one_of(st.from_regex("[a-z][a-z0-9-]{0,12}", fullmatch=True),
                 st.sampled_from(TRAVERSAL + ["OK", "skills", "mid", "operator"]), HOSTILE_TEXT)
SPAWN = st.fixed_dictionaries({"name": NAME},
                              optional={"definition": DEFINITION, "persona": HOSTILE_TEXT,
                                        "description": HOSTILE_TEXT, "template": st.one_of(st.none(), HOSTILE_TEXT)})

def files(root) -> set[str]:
    out = set()
    for dirpath, _dirs, names in os.walk(root):
        out |= {os.path.relpath(os.path.join(dirpath, n), root) for n in names}
    return {f for f in out if not f.startswith(".crowd" + os.sep)}


async def test_hostile_spawns_are_refused_in_one_line_or_stay_within_the_caller(workspace):
    from crowdtui.host import Host, HostOptions
    from crowdtui.hub.unix_transport import unix_client

    (workspace.agents_dir / "boss" / "mid").mkdir(parents=True)
    (workspace.agents_dir / "boss" / "AGENT.md").write_text("---\nname: boss\n---\n")
    (workspace.agents_dir / "boss" / "mid" / "AGENT.md").write_text(f"---\n{PARENT}---\n")
    with open(workspace.root / "crowd.toml", "a") as fh:
        fh.write("\n[quotas]\nspawned_per_agent = 1000\n")
    from crowdtui.workspace import load_workspace

    ws = load_workspace(workspace.root)
    before = files(ws.root)
    host = Host(ws, options=HostOptions(dispatch=False, runtime=False))
    await host.start()
    spawned = []
    try:
        await host.open_door("mid")
        async with Client(unix_client(ws.ipc_dir("mid") / "mcp.sock")) as mid:
            for args in examples(SPAWN, 60):
                try:
                    result = await mid.call_tool("spawn_agent", args)
                except MCPError as exc:
                    assert one_line(exc.error.message) and len(exc.error.message) < 2000, exc.error.message
                else:
                    assert not result.is_error
                    spawned.append(result.structured_content["name"])
    finally:
        await host.stop()
    roster = (await asyncio.to_thread(load_roster, ws))
    mid = roster.get("mid")
    for name in spawned:
        child = roster.get(name)
        assert child is not None and child.parent == "mid" and child.spawned_by == "mid", name
        assert child.resources.cpus <= 0.5 and child.resources.pids <= 64 and child.network == "none"
        assert child.grants[:2] == mid.grants and all(g.startswith("!") for g in child.grants[2:])
        assert not child.mounts and not child.secrets and not child.capabilities
        assert "\x1b" not in child.persona and "\x1b" not in child.description
    new = files(ws.root) - before
    assert new == {f"agents/boss/mid/{n}/AGENT.md" for n in spawned}, sorted(new)
    assert not roster.errors
    assert len(spawned) >= 3  # the sane ones did spawn: this is not refusing everything
