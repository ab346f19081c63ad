"""An agent's home and IPC folder are doors: attacks through links, from inside real containers.

crowdtui runs as root here (as in CI). The agent is a hardened container of the agent
image with a shell; the hub runs in the test. Each attack is run from inside the
container exactly as a hostile agent would, aimed at a root-only host file the test made,
and must leave that file's content, owner and mode unchanged, leak nothing into the
container, and be recorded as an ``agent.unsafe_file`` event.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from crowdtui.agent_folder import AGENT_UID
from crowdtui.hub.hub import Hub
from crowdtui.runtime.secrets_handoff import SecretHandoff

from .test_agent_folder_unit import snapshot

pytestmark = pytest.mark.docker

SECRET = '{"auths": {"registry.example": {"auth": "c2VjcmV0OnRva2Vu"}}}'
ROSTER = {
    "mole": "name: mole\ndescription: a hostile agent\ncommand: [sleep, infinity]\n"
            "network: allowlist\negress: [\"example.org:443\"]\n",
}


@pytest.fixture
def host_secret(tmp_path):
    path = tmp_path / "host-only" / "registry.json"
    path.parent.mkdir(mode=0o700)
    path.write_text(SECRET)
    os.chmod(path, 0o600)
    os.chown(path, 0, 0)
    return path


@pytest.fixture
async def mole(workspace, agent_image):
    """The roster's one agent, registered, with a started hub and a runtime."""
    from qms import Store

    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime

    assert os.geteuid() == 0, "these attacks matter when crowdtui runs as root (as CI does)"
    for rel, front in ROSTER.items():
        folder = workspace.agents_dir / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "AGENT.md").write_text(f"---\n{front}---\nA hostile agent.\n")
    roster = load_roster(workspace)
    assert not roster.problems, roster.problems
    store = await Store.open(workspace.db_path)
    await sync_roster(store, roster)
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace, store=store)
    definition = roster.agents["mole"]
    yield store, hub, runtime, definition
    try:
        await runtime.remove("mole")
    except Exception:
        pass
    await hub.stop()
    await store.close()


async def start(hub, runtime, definition):
    await hub.open_door(definition.name)
    await runtime.start(definition)
    return await runtime.container(definition.name)


async def stop(hub, runtime, name):
    await runtime.stop(name)
    await hub.close_door(name)


def sh(container, script: str) -> str:
    code, out = container.exec_run(["bash", "-c", script], user=f"{AGENT_UID}:{AGENT_UID}")
    text = out.decode(errors="replace")
    assert code == 0, text
    return text


def stop_swapper(container) -> None:
    """Ask the swapper to end and wait until it has (a cleanup: never masks the test's error)."""
    import docker.errors

    try:
        container.exec_run(["touch", "/tmp/stop-swapping"], user="0:0")
        for _ in range(100):
            if container.exec_run(["test", "-e", "/tmp/swapper-done"]).exit_code == 0:
                return
            time.sleep(0.1)
    except docker.errors.APIError:
        pass


async def unsafe_events(store, path: str):
    events = await store.events_after(0, limit=100000, kinds=["agent.unsafe_file"])
    return [e for e in events if e.subject == "mole" and e.detail.get("path") == path]


async def test_a_link_as_mcp_json_reads_no_host_file(mole, host_secret):
    store, hub, runtime, definition = mole
    container = await start(hub, runtime, definition)
    before = snapshot(host_secret)
    sh(container, f"rm ~/.mcp.json; ln -s {host_secret} ~/.mcp.json")
    await stop(hub, runtime, "mole")
    container = await start(hub, runtime, definition)

    assert snapshot(host_secret) == before
    shown = sh(container, "cat ~/.mcp.json; test ! -L ~/.mcp.json && echo REGULAR")
    assert "s3cr3t" not in shown and "c2VjcmV0OnRva2Vu" not in shown and "registry.example" not in shown
    assert "crowd-mcp-bridge" in shown and "REGULAR" in shown
    [event] = await unsafe_events(store, ".mcp.json")
    assert event.actor == "hub" and event.detail["folder"] == "home"
    assert event.detail["found"] == "a symbolic link" and event.detail["action"] in ("ignored", "replaced")


async def test_a_link_as_the_temporary_file_overwrites_and_chmods_nothing(mole, host_secret):
    store, hub, runtime, definition = mole
    container = await start(hub, runtime, definition)
    before = snapshot(host_secret)
    sh(container, "echo '{\"mcpServers\": {\"mine\": {\"command\": \"evil\"}}}' > ~/.mcp.json.new && "
                  f"mv ~/.mcp.json.new ~/.mcp.json && ln -s {host_secret} ~/.mcp.json.tmp")
    await stop(hub, runtime, "mole")
    container = await start(hub, runtime, definition)

    assert snapshot(host_secret) == before
    shown = sh(container, "cat ~/.mcp.json; ls -la ~")
    assert "crowd-mcp-bridge" in shown and '"mine"' in shown  # the agent's own server is kept
    assert "s3cr3t" not in shown and ".mcp.json.tmp" not in shown
    [event] = await unsafe_events(store, ".mcp.json.tmp")
    assert event.detail["action"] == "removed"


async def test_a_link_as_dot_claude_chowns_and_creates_nothing_on_the_host(mole, host_secret):
    """prepare_host used to mkdir/chown ~/.claude by path: a link there gave the agent a host folder."""
    store, hub, runtime, definition = mole
    container = await start(hub, runtime, definition)
    host_dir = host_secret.parent
    dir_before = os.lstat(host_dir)
    listing = sorted(os.listdir(host_dir))
    sh(container, f"rm -rf ~/.claude && ln -s {host_dir} ~/.claude")
    await stop(hub, runtime, "mole")
    await runtime.remove("mole")
    container = await start(hub, runtime, definition)

    after = os.lstat(host_dir)
    assert (after.st_uid, after.st_gid, after.st_mode) == (dir_before.st_uid, dir_before.st_gid, dir_before.st_mode)
    assert sorted(os.listdir(host_dir)) == listing
    sh(container, "test -d ~/.claude && test ! -L ~/.claude")
    [event] = await unsafe_events(store, ".claude")
    assert event.actor == "runtime" and event.detail["action"] == "replaced"


async def test_swapping_door_sockets_for_links_never_changes_a_host_file(mole, host_secret, workspace):
    """A process in the container keeps replacing mcp.sock, egress.sock and secrets.sock with
    links to a host file while the hub closes and reopens the doors (and the runtime binds the
    secrets socket) many times: the file's owner and mode never change.

    As root the IPC folder is crowdtui's and the agent user cannot write it at all (checked
    first); the swapper then runs as the container's uid 0 (no capabilities, but the folder's
    owner), the strongest position an agent could reach there, so the binding itself is raced."""
    store, hub, runtime, definition = mole
    container = await start(hub, runtime, definition)
    before = snapshot(host_secret)
    refused = sh(container, "ln -s /etc/shadow /run/crowd/mcp.sock.new 2>&1 || echo REFUSED")
    assert "REFUSED" in refused and "Permission denied" in refused
    swapper = (
        "end=$((SECONDS+60)); while [ $SECONDS -lt $end ] && [ ! -e /tmp/stop-swapping ]; do for s in mcp egress secrets; do "
        f"ln -sfn {host_secret} /run/crowd/$s.sock.new 2>/dev/null && mv -fT /run/crowd/$s.sock.new /run/crowd/$s.sock 2>/dev/null; "
        "done; done; touch /tmp/swapper-done"
    )
    exec_id = container.client.api.exec_create(container.id, ["bash", "-c", swapper], user="0:0")
    container.client.api.exec_start(exec_id, detach=True)
    try:
        await asyncio.sleep(0.5)
        ipc = workspace.ipc_dir("mole")
        seen_links = 0
        deadline = time.monotonic() + 40
        rounds = 0
        while rounds < 60 and time.monotonic() < deadline:
            rounds += 1
            await hub.close_door("mole")
            seen_links += os.path.islink(ipc / "mcp.sock")
            await hub.open_door("mole")
            handoff = SecretHandoff(ipc, {"K": "v"}, agent="mole")
            await asyncio.to_thread(handoff.open)
            handoff.close()
            assert snapshot(host_secret) == before, f"round {rounds}"
        assert rounds >= 20
        assert seen_links, "the swapper never got a link in: the race was not exercised"
    finally:
        await asyncio.to_thread(stop_swapper, container)
    assert snapshot(host_secret) == before
    replaced = [e for e in await store.events_after(0, limit=100000, kinds=["agent.unsafe_file"])
                if e.detail.get("folder") == "ipc" and e.detail.get("found") == "a symbolic link"]
    assert replaced, "links in the way of a door are recorded"
    # the door still works after the storm
    from mcp import Client

    from crowdtui.hub.unix_transport import unix_client

    await hub.close_door("mole")
    path = await hub.open_door("mole")
    async with Client(unix_client(path)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert "send_message" in names


async def test_a_writable_workspace_cannot_plant_a_roster_of_its_own(workspace, agent_image, tmp_path):
    """With `workspace: rw` the workspace root is the agent's too: agents/ is always mounted
    read-only (made when missing), and a link left where the roster should be refuses the start."""
    import shutil

    from crowdtui.roster import AgentDef
    from crowdtui.runtime.containers import ContainerFailed, Runtime

    runtime = Runtime(workspace)
    definition = AgentDef(name="rw", file=workspace.agents_dir / "rw" / "AGENT.md", rel_path="rw", tier=0,
                          command=("sleep", "infinity"), workspace_mode="rw")
    shutil.rmtree(workspace.agents_dir, ignore_errors=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    workspace.agents_dir.symlink_to(elsewhere)
    with pytest.raises(ContainerFailed, match="not a plain folder"):
        await runtime.start(definition)
    assert await runtime.info("rw") is None
    workspace.agents_dir.unlink()
    await runtime.start(definition)
    try:
        container = await runtime.container("rw")
        code, out = container.exec_run(["bash", "-c", "mkdir /workspace/agents/evil"], user="1000:1000")
        assert code != 0 and "Read-only file system" in out.decode()
        assert workspace.agents_dir.is_dir() and not workspace.agents_dir.is_symlink()
    finally:
        await runtime.remove("rw")


@pytest.mark.parametrize("runner, planted", [
    ("claude-code", (".claude.json", ".claude/settings.json", ".mcp.json")),
    ("codex", (".codex/config.toml",)),
    ("gemini", (".gemini/settings.json",)),
])
def test_what_runners_seed_never_follows_a_planted_link(workspace, host_secret, runner, planted):
    """Runners seed their program's settings into the home (crowdtui.runners): a link the
    agent left at any of those paths, or in place of their folders, is replaced, never read
    or written through; the host file stays as it was and each is a finding."""
    from crowdtui.roster import AgentDef
    from crowdtui.runtime.containers import Runtime

    home = workspace.home_dir("mole")
    home.mkdir(parents=True)
    before = snapshot(host_secret)
    for rel in planted:
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).symlink_to(host_secret)
    folder = home / ("." + runner.split("-")[0] + "-linked")
    folder.symlink_to(host_secret.parent)  # and a linked folder beside them, never walked
    definition = AgentDef(name="mole", file=workspace.agents_dir / "mole" / "AGENT.md", rel_path="mole", tier=0,
                          runner=runner)
    findings: list = []
    Runtime(workspace).prepare_host(definition, findings)
    assert snapshot(host_secret) == before
    seeded = [rel for rel in planted if rel != ".mcp.json"]
    for rel in seeded:
        text = (home / rel).read_text()
        assert not (home / rel).is_symlink() and "c2VjcmV0OnRva2Vu" not in text and "registry.example" not in text
    assert {f.path for f in findings} >= set(seeded), findings
