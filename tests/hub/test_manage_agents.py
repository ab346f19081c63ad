"""Agents that manage agents: the lifecycle tools over an agent's real door, on the real host.

A tier-1 agent (``mid``, child of ``boss``) spawns a child through MCP, starts it as a real
container, the child answers a message (the scripted crowd-agent's echo role), and it is
retired: container gone, home archived, folder and registry row removed. Refusals (outside
the subtree, quotas, more than the caller has) are each an event.
"""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from crowdtui.host import Host, HostOptions
from crowdtui.hub.unix_transport import unix_client
from crowdtui.roster import load_roster
from tests.waiting import wait_for

from .conftest import structured

ROSTER = {
    "boss": "name: boss\ndescription: the top\n",
    "boss/mid": "name: mid\ndescription: a tier-1 manager\nresources: {memory: 256m, cpus: 0.5}\n",
    "other": "name: other\ndescription: a peer of boss\n",
    "boss/narrow": "name: narrow\ndescription: a manager with grant rules\n"
                   "grants: ['send_message(to=boss)', get_messages, spawn_agent, list_agents]\n",
}
ECHO_TEMPLATE = "---\ndescription: answers every message\ncommand: [crowd-agent, --role, echo, --poll, '0.3']\n---\nYou echo.\n"


def make_workspace(ws, quotas: str = "") -> None:
    for rel, front in ROSTER.items():
        folder = ws.agents_dir / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "AGENT.md").write_text(f"---\n{front}---\nA test agent.\n")
    (ws.agents_dir / ".templates").mkdir()
    (ws.agents_dir / ".templates" / "echo.md").write_text(ECHO_TEMPLATE)
    if quotas:
        with open(ws.root / "crowd.toml", "a") as fh:
            fh.write(f"\n[quotas]\n{quotas}\n")


async def call(client, tool: str, **args) -> dict:
    return structured(await client.call_tool(tool, args))


async def events(store, kind: str, actor: str) -> list:
    return await store.events_after(0, limit=1000, kinds=kind, actor=actor)


@pytest.mark.docker
async def test_an_agent_spawns_starts_messages_and_retires_a_child(workspace, agent_image):
    from crowdtui.workspace import load_workspace

    make_workspace(workspace)
    ws = load_workspace(workspace.root)
    host = Host(ws, options=HostOptions(dispatch=False))
    await host.start()
    try:
        store = host.store
        await host.open_door("mid")
        async with Client(unix_client(ws.ipc_dir("mid") / "mcp.sock")) as mid:
            tools = {t.name for t in (await mid.list_tools()).tools}
            assert {"list_agents", "spawn_agent", "start_agent", "stop_agent", "retire_agent"} <= tools

            out = await call(mid, "spawn_agent", name="kid", template="echo",
                             definition={"resources": {"memory": "128m"}})
            assert (out["path"], out["tier"], out["parent"]) == ("boss/mid/kid", 2, "mid")
            # the roster is the source of truth: a file under agents/, loaded like any other
            text = (ws.agents_dir / "boss/mid/kid/AGENT.md").read_text()
            assert "spawned_by: mid" in text and "crowd-agent" in text
            kid = (await asyncio.to_thread(load_roster, ws)).get("kid")
            assert kid is not None and kid.parent == "mid" and kid.spawned_by == "mid"
            assert kid.resources.memory == "128m" and kid.resources.cpus == 0.5  # at most mid's
            row = await store.get_agent("kid")
            assert (row.parent, row.tier) == ("mid", 2)
            assert await events(store, "agent.spawned", "mid")

            listed = {a["name"]: a for a in (await call(mid, "list_agents"))["agents"]}
            assert listed["kid"]["manageable"] and not listed["other"]["manageable"]
            assert listed["kid"]["spawned_by"] == "mid"

            started = await call(mid, "start_agent", name="kid")
            assert started["state"] == "running"
            container = await host.runtime.container("kid")
            assert container is not None and container.status == "running"
            [ev] = [e for e in await events(store, "runtime.start", "hub") if e.subject == "kid"]
            assert ev.detail["reason"] == "start_agent by mid"

            listed = {a["name"]: a for a in (await call(mid, "list_agents"))["agents"]}
            assert listed["kid"]["state"] == "running" and listed["kid"]["runs_on"]

            # the child works a message: the echo role answers its sender
            await call(mid, "send_message", to="kid", body="ping from mid")

            async def answered():
                got = await call(mid, "get_messages")
                return [m for m in got["messages"] if m["sender"] == "kid"]

            [answer] = await wait_for(answered, 45, "kid's answer")
            assert answer["body"] == "echo: ping from mid"

            out = await call(mid, "retire_agent", name="kid")
            assert out["retired"]
            archive = ws.root / out["archive"]
            assert archive.is_dir() and ((archive / "home.ext4").exists() or (archive / "home").is_dir())
            assert await host.runtime.container("kid") is None
            assert not (ws.agents_dir / "boss/mid/kid").exists()
            assert await store.get_agent("kid") is None
            assert await events(store, "agent.retired", "mid")
            assert "kid" not in (await asyncio.to_thread(load_roster, ws))
    finally:
        await host.stop()


async def test_a_tier_1_agent_is_held_to_its_subtree_and_quotas_each_refusal_an_event(workspace):
    from crowdtui.workspace import load_workspace

    make_workspace(workspace, "spawned_per_agent = 1\nagents_running_max = 0")
    ws = load_workspace(workspace.root)
    host = Host(ws, options=HostOptions(dispatch=False, runtime=False))
    await host.start()
    try:
        store = host.store
        await host.open_door("mid")
        async with Client(unix_client(ws.ipc_dir("mid") / "mcp.sock")) as mid:
            async def refused(tool: str, **args) -> str:
                with pytest.raises(MCPError) as err:
                    await mid.call_tool(tool, args)
                return err.value.error.message

            # outside its subtree: a peer, its own parent, itself
            assert "not below mid" in await refused("stop_agent", name="other")
            assert "not below mid" in await refused("start_agent", name="boss")
            assert "not below mid" in await refused("restart_agent", name="mid")
            assert "not below mid" in await refused("retire_agent", name="other")
            # a child goes only into its own folder: no paths, no taking a name from elsewhere
            assert "plain name" in await refused("spawn_agent", name="../../other/x")
            assert "exists already" in await refused("spawn_agent", name="other")
            denied = {(e.subject, e.detail["args"]["name"]) for e in await events(store, "hub.denied", "mid")}
            assert {("stop_agent", "other"), ("start_agent", "boss"), ("restart_agent", "mid"),
                    ("retire_agent", "other"), ("spawn_agent", "../../other/x"), ("spawn_agent", "other")} <= denied

            # more than it has itself
            assert "more than your own 256m" in await refused(
                "spawn_agent", name="big", definition={"resources": {"memory": "1g"}})
            assert "wider than your own 'none'" in await refused(
                "spawn_agent", name="wide", definition={"network": "open"})
            assert "not one of your own" in await refused(
                "spawn_agent", name="mounty", definition={"mounts": ["/:/host:rw"]})
            assert "may not set 'spawned_by'" in await refused(
                "spawn_agent", name="liar", definition={"spawned_by": "boss"})
            assert not any((ws.agents_dir / "boss/mid" / n).exists() for n in ("big", "wide", "mounty", "liar"))

            # quotas: one spawned child at a time, no starts past the running limit
            await call(mid, "spawn_agent", name="one", template="echo")
            assert "spawned_per_agent = 1" in await refused("spawn_agent", name="two", template="echo")
            assert "agents_running_max = 0" in await refused("start_agent", name="one")
            quota = {e.subject for e in await events(store, "quota.refused", "mid")}
            assert quota == {"spawned_per_agent", "agents_running_max"}
            assert not (ws.agents_dir / "boss/mid/two").exists()

        # the spawned child (tier 2) may list agents but not manage any
        await host.open_door("one")
        async with Client(unix_client(ws.ipc_dir("one") / "mcp.sock")) as one:
            tools = {t.name for t in (await one.list_tools()).tools}
            assert "list_agents" in tools and not tools & {"spawn_agent", "start_agent", "retire_agent"}
    finally:
        await host.stop()


async def test_spawned_definitions_are_checked_bounded_and_never_widen_the_callers_grants(workspace):
    from crowdtui.workspace import load_workspace

    make_workspace(workspace)
    ws = load_workspace(workspace.root)
    host = Host(ws, options=HostOptions(dispatch=False, runtime=False))
    await host.start()
    try:
        store = host.store
        for name in ("mid", "narrow"):
            await host.open_door(name)
        async with Client(unix_client(ws.ipc_dir("mid") / "mcp.sock")) as mid, \
                Client(unix_client(ws.ipc_dir("narrow") / "mcp.sock")) as narrow:
            async def refused(client, **args) -> str:
                with pytest.raises(MCPError) as err:
                    await client.call_tool("spawn_agent", args)
                return err.value.error.message

            assert "unknown key" in await refused(mid, name="junk", definition={"colour": "red"})
            assert "is not one of" in await refused(mid, name="junk", definition={"launch": "sometimes"})
            assert "not allowed for a spawned agent" in await refused(mid, name="junk", definition={"launch": "always"})
            assert "over 64 KiB" in await refused(mid, name="junk", persona="x" * 70_000)
            assert "not a template name" in await refused(mid, name="junk", template="../boss")
            assert "no template 'nope'" in await refused(mid, name="junk", template="nope")
            assert "valid" in await refused(mid, name="../escape")
            assert "exists already" in await refused(mid, name="other")
            assert not (ws.agents_dir / "boss/mid/junk").exists()
            assert len(await events(store, "hub.denied", "mid")) >= 6

            # control characters end up inert in the file and the registry
            await call(mid, "spawn_agent", name="quiet", description="rings\x07 the bell",
                       persona="\x1b[2J wipe the screen")
            text = (ws.agents_dir / "boss/mid/quiet/AGENT.md").read_text()
            assert "\x1b" not in text and "\x07" not in text and "\\x1b[2J" in text
            assert "\x07" not in (await store.get_agent("quiet")).description

            # a caller with grant rules passes them on; its child may only add deny rules
            assert "could widen your own grants" in await refused(narrow, name="wider",
                                                                  definition={"grants": ["observe"]})
            await call(narrow, "spawn_agent", name="narrower", definition={"grants": ["!send_message"]})
            child = (await asyncio.to_thread(load_roster, ws)).get("narrower")
            assert child.grants == ("send_message(to=boss)", "get_messages", "spawn_agent", "list_agents",
                                    "!send_message")
        from crowdtui.hub.grants import Grants

        grants = Grants.of(child.tier, child.grants)
        assert not grants.check("send_message", {"to": "boss"}).allowed and grants.check("get_messages").allowed
    finally:
        await host.stop()
