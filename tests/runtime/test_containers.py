"""Agent containers on the real engine: lifecycle, re-adoption, hardening, isolation, mounts."""

from __future__ import annotations

import os

import asyncio
import json

import pytest

from crowdtui.roster import Mount, Resources
from crowdtui.runtime import labels
from crowdtui.runtime.containers import (
    ContainerFailed,
    NoContainer,
    Runtime,
    container_name,
)
from .runtime_helpers import exec_in

pytestmark = pytest.mark.docker


def _count(docker_client, ws) -> int:
    return len(docker_client.containers.list(
        all=True, filters={"label": f"{labels.WORKSPACE}={ws.id}"}))


async def test_two_agents_up_each_in_its_own_labelled_container(runtime, agent, workspace, docker_client):
    a = await runtime.start(agent("alpha"))
    b = await runtime.start(agent("beta"))
    assert (a.state, b.state) == ("running", "running")
    assert a.container_id != b.container_id
    assert a.container_name == container_name(workspace, "alpha")
    listed = await runtime.list()
    assert [(i.name, i.state) for i in listed] == [("alpha", "running"), ("beta", "running")]
    c = docker_client.containers.get(a.container_id)
    assert c.labels[labels.WORKSPACE] == workspace.id and c.labels[labels.AGENT] == "alpha"
    # starting a running agent again returns it; no duplicate container
    again = await runtime.start(agent("alpha"))
    assert again.container_id == a.container_id
    assert _count(docker_client, workspace) == 2


async def test_second_runtime_adopts_running_containers_instead_of_duplicating(
    runtime, agent, workspace, docker_client
):
    first = {i.name: i.container_id for i in [await runtime.start(agent("alpha")),
                                               await runtime.start(agent("beta"))]}
    other = Runtime(workspace, docker_client)  # e.g. a restarted crowdtui
    adopted = await other.adopt()
    assert {i.name: i.container_id for i in adopted} == first
    assert all(i.running for i in adopted)
    assert (await other.start(agent("alpha"))).container_id == first["alpha"]
    assert (await other.container("beta")).id == first["beta"]
    assert _count(docker_client, workspace) == 2


async def test_hardening_read_back_from_docker_inspect(runtime, agent, docker_client):
    info = await runtime.start(agent("alpha", resources=Resources(cpus=0.5, memory="64m", pids=100)))
    attrs = docker_client.api.inspect_container(info.container_id)
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["ReadonlyRootfs"] is True
    assert any(o.startswith("no-new-privileges") for o in host["SecurityOpt"])
    assert host["PidsLimit"] == 100
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["NetworkMode"] == "none"
    assert host["Init"] is True
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["Config"]["Tty"] is True and attrs["Config"]["OpenStdin"] is True
    assert "/tmp" in host["Tmpfs"]
    # and from inside: not root, no capabilities, no network but loopback, root fs read-only
    code, out = exec_in(await runtime.container("alpha"),
                        "id -u; grep CapEff /proc/self/status; ls /sys/class/net; "
                        "touch /etc/x 2>&1; grep NoNewPrivs /proc/self/status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "1000"
    assert lines[1].split()[1] == "0000000000000000"
    assert lines[2] == "lo"
    assert "Read-only file system" in out
    assert lines[-1].split()[1] == "1"


async def test_capabilities_network_and_workspace_mode_follow_the_definition(runtime, agent, workspace):
    cfg = runtime.container_config(agent("alpha", capabilities=("NET_BIND_SERVICE",), network="open",
                                         workspace_mode="rw", env={"FOO": "bar"}))
    assert cfg["cap_drop"] == ["ALL"] and cfg["cap_add"] == ["NET_BIND_SERVICE"]
    assert cfg["network_mode"] == "bridge"
    ws_mount = next(m for m in cfg["mounts"] if m["Target"] == "/workspace")
    assert ws_mount["ReadOnly"] is False
    # ...but never the roster or the configuration (an agent must not raise its own authority)
    guarded = {m["Target"]: m["ReadOnly"] for m in cfg["mounts"]}
    assert guarded["/workspace/agents"] is True and guarded["/workspace/crowd.toml"] is True
    assert cfg["environment"]["FOO"] == "bar" and cfg["environment"]["CROWD_AGENT"] == "alpha"
    # allowlist stays without a network until the egress proxy exists
    assert runtime.container_config(agent("beta", network="allowlist"))["network_mode"] == "none"
    default = runtime.container_config(agent("gamma"))
    assert next(m for m in default["mounts"] if m["Target"] == "/workspace")["ReadOnly"] is True
    # the store and every agent's folders are hidden under /workspace/.crowd
    hidden = next(m for m in default["mounts"] if m["Target"] == "/workspace/.crowd")
    assert hidden["ReadOnly"] is True
    assert cfg["name"] != runtime.container_config(agent("beta"))["name"]


async def test_isolation_agent_sees_neither_others_home_nor_ipc(runtime, agent, workspace):
    await runtime.start(agent("alpha"))
    await runtime.start(agent("beta"))
    # beta's folders hold something recognisable
    (workspace.home_dir("beta") / "diary.txt").write_text("beta-secret-home\n")
    (workspace.ipc_dir("beta") / "note").write_text("beta-secret-ipc\n")
    code, out = exec_in(
        await runtime.container("alpha"),
        "for p in /workspace/.crowd/homes/beta /workspace/.crowd/ipc/beta /home/beta "
        "/workspace/.crowd/crowd.db; do test -e $p && echo VISIBLE $p; done; "
        "grep -rls beta-secret /home /run /workspace /tmp /mnt /srv /opt 2>/dev/null; "
        "ls -A /workspace/.crowd | wc -l; "
        "echo written > /home/agent/mine.txt && echo home-writable; "
        "(echo ipc > /run/crowd/alpha.txt) 2>/dev/null && echo ipc-writable || echo ipc-read-only",
    )
    assert "VISIBLE" not in out
    assert "beta-secret" not in out
    # the IPC folder is crowdtui's: the agent connects to its sockets, writes nothing there
    assert out.splitlines()[-3:] == ["0", "home-writable", "ipc-read-only"]
    # what alpha wrote landed in its own folders on the host, owned by the agent user
    mine = workspace.home_dir("alpha") / "mine.txt"
    assert mine.read_text() == "written\n"
    assert mine.stat().st_uid == 1000
    assert not (workspace.ipc_dir("alpha") / "alpha.txt").exists()
    assert not (workspace.home_dir("beta") / "mine.txt").exists()


async def test_persona_and_skills_are_mounted_read_only(runtime, agent):
    a = agent("alpha", persona="# Alpha\nYou review documents.\n",
              skills={"triage": "---\nname: triage\n---\nSort the inbox.\n"})
    await runtime.start(a)
    code, out = exec_in(await runtime.container("alpha"),
                        "cat ~/CLAUDE.md; cat ~/.claude/skills/triage/SKILL.md; "
                        "echo x >> ~/CLAUDE.md 2>/dev/null || echo persona-ro; "
                        "touch ~/.claude/settings.json && echo claude-dir-writable")
    assert "You review documents." in out and "Sort the inbox." in out
    assert "persona-ro" in out and "claude-dir-writable" in out


async def test_home_outlives_the_container_and_stop_is_not_a_crash(runtime, agent, workspace):
    first = await runtime.start(agent("alpha"))
    code, _ = exec_in(await runtime.container("alpha"), "echo remembered > ~/memory.md")
    assert code == 0
    stopped = await runtime.stop("alpha", timeout=2)
    assert stopped.state == "stopped" and stopped.container_id == first.container_id
    assert (await runtime.info("alpha")).state == "stopped"
    second = await runtime.start(agent("alpha"))
    assert second.state == "running" and second.container_id != first.container_id
    code, out = exec_in(await runtime.container("alpha"), "cat ~/memory.md")
    assert out.strip() == "remembered"


async def test_restart_gives_a_fresh_container_and_remove_leaves_none(runtime, agent, workspace, docker_client):
    first = await runtime.start(agent("alpha"))
    second = await runtime.restart(agent("alpha", env={"NEW": "1"}))
    assert second.running and second.container_id != first.container_id
    code, out = exec_in(await runtime.container("alpha"), "echo $NEW")
    assert out.strip() == "1"
    assert _count(docker_client, workspace) == 1
    assert await runtime.remove("alpha") is True
    assert await runtime.info("alpha") is None
    assert await runtime.container("alpha") is None
    assert _count(docker_client, workspace) == 0
    assert await runtime.remove("alpha") is False


async def test_exit_codes_read_as_exited_or_crashed(runtime, agent, docker_client):
    ok = await runtime.start(agent("ok", command=("true",)))
    bad = await runtime.start(agent("bad", command=("bash", "-c", "exit 7")))
    for info in (ok, bad):
        docker_client.containers.get(info.container_id).wait(timeout=30)
    ok, bad = await runtime.info("ok"), await runtime.info("bad")
    assert (ok.state, ok.exit_code) == ("exited", 0)
    assert (bad.state, bad.exit_code, bad.oom_killed) == ("crashed", 7, False)
    assert bad.describe() == "crashed (exit 7)"


async def test_stop_of_an_agent_without_container_is_a_clear_error(runtime):
    with pytest.raises(NoContainer, match="ghost has no container"):
        await runtime.stop("ghost")


async def test_missing_image_is_a_clear_error_and_nothing_is_left(runtime, agent, workspace, docker_client):
    with pytest.raises(ContainerFailed, match="crowdtui-nope:1 is not in the engine"):
        await runtime.start(agent("alpha", image="crowdtui-nope:1"))
    assert _count(docker_client, workspace) == 0


async def test_missing_mount_source_is_a_clear_error(runtime, agent, workspace, docker_client):
    bad = agent("alpha", mounts=(Mount(source="no/such/dir", target="/data"),))
    with pytest.raises(ContainerFailed, match=r"mount source .*no/such/dir does not exist"):
        await runtime.start(bad)
    assert _count(docker_client, workspace) == 0
    (workspace.root / "data").mkdir()
    (workspace.root / "data" / "f.txt").write_text("shared\n")
    good = agent("alpha", mounts=(Mount(source="data", target="/data", mode="ro"),))
    await runtime.start(good)
    code, out = exec_in(await runtime.container("alpha"), "cat /data/f.txt; touch /data/g 2>&1")
    assert out.startswith("shared") and "Read-only" in out



async def test_secrets_reach_the_agent_environment_only(runtime, agent, store, workspace, docker_client,
                                                        monkeypatch):
    from crowdtui.secrets import SecretError, Vault

    monkeypatch.setenv("CROWD_SECRET_KEY", "11" * 32)
    needs = agent("alpha", secrets=("API_TOKEN",))
    with pytest.raises(SecretError, match="API_TOKEN is not set"):
        await runtime.start(needs)
    assert _count(docker_client, workspace) == 0
    await Vault.open(workspace, store).set("API_TOKEN", "s3cr3t-value")
    info = await runtime.start(needs)
    # the agent's process has it (crowd-entry took it from a one-shot socket); the configuration does not
    code, out = exec_in(await runtime.container("alpha"),
                        "for d in /proc/[0-9]*; do grep -q '^sleep' $d/cmdline 2>/dev/null && "
                        "tr '\\0' '\\n' < $d/environ; done")
    assert "API_TOKEN=s3cr3t-value" in out.splitlines()
    attrs = docker_client.api.inspect_container(info.container_id)
    assert "s3cr3t-value" not in json.dumps(attrs)
    assert not [e for e in await store.events_after(0) if "s3cr3t-value" in json.dumps(e.detail)]


async def test_output_outlives_the_container_in_the_agent_log_folder(runtime, agent, workspace, docker_client):
    from crowdtui.runtime.logs import archived_logs

    first = await runtime.start(agent("alpha", command=("bash", "-c", "echo first life; sleep infinity")))
    host = docker_client.api.inspect_container(first.container_id)["HostConfig"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    deadline = asyncio.get_running_loop().time() + 10
    while b"first life" not in docker_client.containers.get(first.container_id).logs():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    second = await runtime.restart(agent("alpha", command=("bash", "-c", "echo second life; sleep infinity")))
    files = archived_logs(workspace.log_dir("alpha"))
    assert len(files) == 1 and first.container_id[:12] in files[0].name
    assert files[0].read_text().rstrip().endswith(" first life")
    # a container with no output yet leaves nothing to archive: wait for its line first
    deadline = asyncio.get_running_loop().time() + 10
    while b"second life" not in docker_client.containers.get(second.container_id).logs():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await runtime.remove("alpha")
    assert len(archived_logs(workspace.log_dir("alpha"))) == 2
    assert not archived_logs(workspace.log_dir("beta"))


async def test_a_changed_definition_is_noticed_on_the_running_container(runtime, agent):
    info = await runtime.start(agent("alpha"))
    assert runtime.is_current(agent("alpha"), info)
    assert not runtime.is_current(agent("alpha", env={"MODE": "new"}), info)
    assert not runtime.is_current(agent("alpha", resources=Resources(memory="1g")), info)
    assert not runtime.is_current(agent("alpha", persona="# a new persona\n"), info)
    # a second runtime computes the same hash: nothing else (time, process) goes into it
    other = Runtime(runtime.workspace, runtime.client)
    assert (await other.info("alpha")).config == other.config_hash(agent("alpha"))


async def test_an_engine_that_stops_answering_is_a_one_line_error(workspace, tmp_path, agent):
    import docker

    from crowdtui.errors import EngineUnavailable

    gone = docker.DockerClient(base_url=f"unix://{tmp_path}/gone.sock", version="1.41")
    runtime = Runtime(workspace, gone)
    for call in (runtime.list(), runtime.info("alpha"), runtime.stop("alpha"), runtime.start(agent("alpha"))):
        with pytest.raises(EngineUnavailable, match="stopped answering"):
            await call
    gone.close()


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", "Upper", "x\x1b[2J", "operator", "a" * 64])
async def test_names_that_are_not_agent_names_are_refused_and_nothing_is_written(
    runtime, agent, workspace, bad
):
    from crowdtui.runtime.containers import UnknownAgent

    before = sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*"))
    for call in (lambda: runtime.stop(bad), lambda: runtime.remove(bad), lambda: runtime.info(bad),
                 lambda: runtime.container(bad), lambda: runtime.start(agent(bad))):
        with pytest.raises(UnknownAgent, match="is not an agent name"):
            await call()
    assert sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*")) == before
    assert not (workspace.root.parent / "escape").exists()


async def test_writable_workspace_keeps_roster_and_config_read_only(runtime, agent, workspace):
    work = workspace.root / "work"  # a folder the agent's uid owns, as a user's checkout would be
    work.mkdir()
    os.chown(work, 1000, 1000)
    info = await runtime.start(agent("alpha", command=("sleep", "infinity"), workspace_mode="rw"))
    assert info.running
    container = await runtime.container("alpha")
    code, out = exec_in(container, "echo x > /workspace/work/notes.txt && cat /workspace/work/notes.txt")
    assert code == 0 and "x" in out
    for target in ("/workspace/agents/evil/AGENT.md", "/workspace/crowd.toml"):
        code, out = exec_in(container, f"mkdir -p $(dirname {target}) 2>&1; echo y >> {target}")
        assert code != 0, f"{target} was writable: {out}"
    assert "y" not in (workspace.root / "crowd.toml").read_text().splitlines()
    assert not (workspace.root / "agents" / "evil").exists()
