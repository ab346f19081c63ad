"""Agents on a second Docker engine reached over tcp+TLS: start, attach, exec, logs, stop,
its home a volume there with the persona copied in, and the image copied over by id."""

from __future__ import annotations

import asyncio
import json

import pytest

from crowdtui.roster import load_roster
from crowdtui.runtime import labels, lifecycle
from crowdtui.runtime.containers import ContainerFailed, Runtime
from crowdtui.runtime.logs import read_logs

from .conftest import drive_terminal, write_agent

pytestmark = pytest.mark.docker


async def test_an_agent_runs_on_the_tls_engine(far_workspace, far_engine, docker_client, agent_image, capsys):
    ws = far_workspace
    write_agent(ws, "far1", "engine: far\ncommand: [sh]\n", "You are far away.\n")
    roster = load_roster(ws)
    runtime = Runtime(ws, docker_client)
    store = await ws.open_store()
    try:
        info = await lifecycle.start(runtime, store, roster.get("far1"), actor="operator", register_first=True)
        assert (info.engine, info.state) == ("far", "running")
        remote = far_engine.local_client()
        try:
            on_far = remote.containers.list(filters={"label": f"{labels.WORKSPACE}={ws.id}"})
            assert [c.id for c in on_far] == [info.container_id]
            assert on_far[0].labels[labels.ENGINE] == "far"
            assert remote.images.get(agent_image).id == docker_client.images.get(agent_image).id
        finally:
            remote.close()
        assert docker_client.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={ws.id}"}) == []
        assert runtime.engine_of("far1") == "far"
        # attach (through the pool, as the console does), resize, exec
        await drive_terminal(runtime, docker_client, info, "far", 21, 77, "You are far away.")
        # the persona was copied into its home volume, owned by the agent
        container = await runtime.container("far1")
        code, out = await asyncio.to_thread(container.exec_run, ["sh", "-c", "stat -c %u ~/CLAUDE.md ~/.claude"])
        assert code == 0 and out.decode().split() == ["1000", "1000"]
        # logs
        lines = await read_logs(runtime, ["far1"])
        assert any("far-42" in line.text for line in lines)
        # ls shows where it runs
        rows = {a.name: a for a in await runtime.list()}
        assert rows["far1"].engine == "far"
        # the CLI: exec and ls find it on its engine
        from crowdtui.cli import main

        capsys.readouterr()
        code = await asyncio.to_thread(main, ["exec", "--json", "-w", str(ws.root), "far1", "sh", "-c", "echo cli-$((1+1))"])
        assert code == 0 and json.loads(capsys.readouterr().out)["stdout"] == "cli-2\n"
        assert await asyncio.to_thread(main, ["ls", "--json", "-w", str(ws.root)]) == 0
        assert {r["name"]: r["engine"] for r in json.loads(capsys.readouterr().out)}["far1"] == "far"
        # stop: the state says stopped, the event names the engine's container
        stopped = await lifecycle.stop(runtime, store, "far1", actor="operator", timeout=2)
        assert stopped.state == "stopped"
        assert (await store.get_agent("far1")).state == "stopped"
    finally:
        await store.close()
        runtime.close()


async def test_what_a_remote_engine_cannot_give_is_refused(far_workspace, docker_client, agent_image):
    ws = far_workspace
    write_agent(ws, "needy", "engine: far\ncommand: [sh]\nsecrets: [API_KEY]\nmounts: ['docs:/docs']\n")
    runtime = Runtime(ws, docker_client)
    try:
        with pytest.raises(ContainerFailed, match="secrets.*mounts.*engine: local"):
            await runtime.start(load_roster(ws).get("needy"), secrets={"API_KEY": "x"})
    finally:
        runtime.close()


def test_an_unknown_engine_is_a_roster_error(far_workspace):
    write_agent(far_workspace, "lost", "engine: nowhere\n")
    roster = load_roster(far_workspace)
    assert "lost" not in roster
    problem = next(p for p in roster.problems if p.key == "engine")
    assert problem.line == 3 and "no engine 'nowhere'" in problem.message and "far" in problem.message


def test_engine_check_reports_each_engine(far_workspace, far_engine, capsys):
    from crowdtui.cli import main

    cfg = far_workspace.root / "crowd.toml"
    gone = far_engine.toml("gone").replace(f":{2376}", ":2399")
    cfg.write_text(cfg.read_text() + "\n" + gone)
    code = main(["engine", "check", "--json", "-w", str(far_workspace.root)])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 1
    assert rows["local"]["ok"] and rows["far"]["ok"] and not rows["gone"]["ok"]
    assert rows["far"]["engine_id"] != rows["local"]["engine_id"]
    assert "2399" in rows["gone"]["error"] or "refused" in rows["gone"]["error"].lower()
    assert main(["engine", "ls", "--json", "-w", str(far_workspace.root)]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["local", "far", "gone"]


async def test_placement_by_labels_and_by_free_memory(far_workspace, far_engine, docker_client, agent_image):
    from crowdtui.runtime.engines import copy_image

    ws = far_workspace
    write_agent(ws, "big1", "engine_labels: [big]\ncommand: [sh]\n")
    write_agent(ws, "any1", "command: [sh]\n")
    write_agent(ws, "odd1", "engine_labels: [gpu]\ncommand: [sh]\n")
    roster = load_roster(ws)
    runtime = Runtime(ws, docker_client)
    try:
        assert runtime.engines.place(roster.get("big1")) == "far"  # only far has the label
        assert runtime.engines.place(roster.get("any1")) == "local"  # policy local
        with pytest.raises(Exception, match="no engine has the labels gpu"):
            runtime.engines.place(roster.get("odd1"))
    finally:
        runtime.close()
    cfg = ws.root / "crowd.toml"
    cfg.write_text(cfg.read_text() + "\n[placement]\npolicy = \"spread\"\n")
    from crowdtui.workspace import load_workspace

    runtime = Runtime(load_workspace(ws.root), docker_client)
    remote = far_engine.local_client()
    hog = None
    try:
        free = {name: runtime.engines.free_memory(name) for name in ("local", "far")}
        assert all(isinstance(v, int) and v > 0 for v in free.values()), free
        # far's memory all promised to one container: spread puts the agent on local (the local
        # engine's own free memory moves with other tests, so only this direction is certain)
        copy_image(docker_client, remote, agent_image)
        total = remote.info()["MemTotal"]
        hog = remote.containers.run(agent_image, ["sleep", "infinity"], detach=True, mem_limit=total,
                                    labels={labels.WORKSPACE: ws.id}, network_mode="none")
        assert runtime.engines.free_memory("far") == 0
        assert runtime.engines.place(roster.get("any1")) == "local"
        hog.remove(force=True)
        hog = None
        assert runtime.engines.free_memory("far") == free["far"]
    finally:
        if hog is not None:
            hog.remove(force=True)
        remote.close()
        runtime.close()
