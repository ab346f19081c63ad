"""``crowdtui ls|up|down|restart|logs|stats`` as a person runs them, on the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from crowdtui.runtime import labels

pytestmark = pytest.mark.docker


def _write_agent(ws, name: str, front: str, body: str = "persona\n") -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(f"---\n{front}---\n{body}")


@pytest.fixture
def crew(workspace, agent_image):
    _write_agent(workspace, "alpha",
                 'command: [bash, -c, "echo alpha one; echo alpha two; sleep infinity"]\n')
    _write_agent(workspace, "beta",
                 'command: [bash, -c, "echo beta one; sleep infinity"]\nresources: {memory: 64m}\n')
    return workspace


def crowd(ws, *argv, env=None, timeout=60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CROWD_WORKSPACE", None)
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *argv],
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def _containers(docker_client, ws):
    return docker_client.containers.list(all=True, filters={"label": f"{labels.WORKSPACE}={ws.id}"})


def _ls(ws) -> dict[str, dict]:
    out = crowd(ws, "ls", "--json")
    assert out.returncode == 0, out.stderr
    return {row["name"]: row for row in json.loads(out.stdout)}


def test_up_ls_logs_stats_down_round_trip(crew, docker_client, agent_image):
    before = _ls(crew)
    assert before["alpha"]["state"] == "not started" and before["alpha"]["tier"] == 0
    assert before["alpha"]["image"] == agent_image

    up = crowd(crew, "up", "alpha", "beta")
    assert up.returncode == 0, up.stderr
    assert up.stdout.splitlines()[0].startswith("alpha: running (crowd-")

    rows = _ls(crew)
    assert {n: r["state"] for n, r in rows.items()} == {"alpha": "running", "beta": "running"}
    assert rows["alpha"]["registered"] and rows["alpha"]["container"]
    table = crowd(crew, "ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "TIER", "STATE", "UNREAD", "IMAGE"]
    assert table[1].split()[:4] == ["alpha", "0", "running", "0"]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        merged = crowd(crew, "logs").stdout.splitlines()
        if len(merged) >= 3:
            break
        time.sleep(0.2)
    assert sorted(merged) == ["alpha | alpha one", "alpha | alpha two", "beta  | beta one"]
    assert merged.index("alpha | alpha one") < merged.index("alpha | alpha two")
    assert crowd(crew, "logs", "alpha", "-n", "1").stdout.splitlines() == ["alpha two"]

    stats = crowd(crew, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    by_name = {s["name"]: s for s in json.loads(stats.stdout)}
    assert set(by_name) == {"alpha", "beta"}
    assert by_name["beta"]["memory_limit"] == 64 * 1024 * 1024
    assert by_name["alpha"]["memory"] > 0 and by_name["alpha"]["pids"] >= 2
    assert crowd(crew, "stats").stdout.split()[:6] == ["NAME", "CPU", "%", "MEMORY", "LIMIT", "MEM"]

    down = crowd(crew, "down", "alpha", "--timeout", "2")
    assert down.returncode == 0, down.stderr
    rows = _ls(crew)
    assert rows["alpha"]["state"] == "stopped" and rows["beta"]["state"] == "running"

    down_all = crowd(crew, "down", "--all", "--rm", "--timeout", "2")
    assert down_all.returncode == 0, down_all.stderr
    assert _containers(docker_client, crew) == []
    rows = _ls(crew)  # the registry remembers the operator stopped them
    assert rows["alpha"]["state"] == rows["beta"]["state"] == "stopped"


def test_registry_follows_up_and_down(crew):
    import asyncio

    from qms import Store

    assert crowd(crew, "up", "--all").returncode == 0
    assert crowd(crew, "down", "beta", "--timeout", "1").returncode == 0

    async def states():
        store = await Store.open(crew.db_path)
        try:
            return ({a.name: a.state for a in await store.list_agents()},
                    [(e.subject, e.detail["state"]) for e in await store.events_after(0, kinds=["agent.state"])])
        finally:
            await store.close()

    registry, events = asyncio.run(states())
    assert registry == {"alpha": "running", "beta": "stopped"}
    assert ("beta", "running") in events and events[-1] == ("beta", "stopped")

    # who asked is an event too: the operator, or whom the operator acts for
    assert crowd(crew, "--as", "alpha", "restart", "beta").returncode == 0

    async def actions():
        store = await Store.open(crew.db_path)
        try:
            return [(e.actor, e.kind, e.subject) for e in await store.events_after(0, kinds=["runtime.*"])]
        finally:
            await store.close()

    assert asyncio.run(actions()) == [
        ("operator", "runtime.start", "alpha"), ("operator", "runtime.start", "beta"),
        ("operator", "runtime.stop", "beta"), ("alpha", "runtime.restart", "beta"),
    ]


def test_restart_replaces_the_container(crew, docker_client):
    assert crowd(crew, "up", "alpha").returncode == 0
    first = _ls(crew)["alpha"]["container"]
    out = crowd(crew, "restart", "alpha")
    assert out.returncode == 0, out.stderr
    second = _ls(crew)["alpha"]
    assert second["state"] == "running" and second["container"] != first
    assert len(_containers(docker_client, crew)) == 1


def test_unknown_agent_is_one_line_and_nothing_starts(crew, docker_client):
    for argv in (("up", "alpha", "nobody"), ("down", "nobody"), ("restart", "nobody"),
                 ("logs", "nobody")):
        out = crowd(crew, *argv)
        assert out.returncode == 1, (argv, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, (argv, out.stderr)
        assert "unknown agent 'nobody'" in lines[0] and "alpha, beta" in lines[0]
    assert _containers(docker_client, crew) == []  # alpha was not started either


def test_a_broken_definition_says_file_line_and_key(crew, docker_client):
    _write_agent(crew, "gamma", "launch: sometimes\n")
    out = crowd(crew, "up", "gamma")
    assert out.returncode == 1
    assert "agents/gamma/AGENT.md:2" in out.stderr and "'launch'" in out.stderr
    assert _containers(docker_client, crew) == []
    # the good agents still start
    assert crowd(crew, "up", "alpha").returncode == 0


def test_usage_mistakes_exit_2(crew):
    for argv in (("up",), ("down",), ("up", "alpha", "--all")):
        out = crowd(crew, *argv)
        assert out.returncode == 2, argv
        assert len(out.stderr.strip().splitlines()) == 1


def test_down_of_a_known_agent_that_never_started(crew):
    out = crowd(crew, "down", "alpha")
    assert out.returncode == 0 and out.stdout.strip() == "alpha: not started"


def test_logs_of_an_agent_without_container_says_how_to_start_it(crew):
    out = crowd(crew, "logs", "alpha")
    assert out.returncode == 1
    assert "crowdtui up alpha" in out.stderr
    # once it has lived, its earlier output is pointed to
    assert crowd(crew, "up", "alpha").returncode == 0
    # only output is archived: wait until alpha has printed before removing it
    deadline = time.monotonic() + 30
    while "alpha two" not in (shown := crowd(crew, "logs", "alpha").stdout.splitlines()):
        assert time.monotonic() < deadline, f"alpha printed nothing: {shown!r}"
        time.sleep(0.1)
    assert crowd(crew, "down", "--rm", "alpha", "--timeout", "1").returncode == 0
    out = crowd(crew, "logs", "alpha")
    assert out.returncode == 1 and ".crowd/logs/alpha/" in out.stderr


def test_missing_engine_is_one_line_and_exit_3(crew, tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    for argv in (("ls",), ("up", "alpha"), ("down", "--all"), ("logs",), ("stats",), ("restart", "alpha")):
        out = crowd(crew, *argv, env=env)
        assert out.returncode == 3, (argv, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("crowdtui: no Docker engine answers"), argv


def test_logs_follow_prints_new_lines_and_strips_terminal_escapes(crew, docker_client):
    _write_agent(crew, "ticker", 'command: [bash, -c, "for i in 1 2 3 4 5 6 7 8 9; do '
                 'printf \'\\\\033[1;32mtick %s\\\\033[0m\\\\r\\\\n\' $i; sleep 0.3; done; sleep infinity"]\n')
    assert crowd(crew, "up", "ticker").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "crowdtui", "--workspace", str(crew.root), "logs", "-f", "ticker"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "tick 6" not in seen:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip("\n"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "tick 6" in seen, (seen, proc.stderr.read())
    assert seen[:2] == ["tick 1", "tick 2"]  # plain text: no escapes, no carriage returns
    raw = docker_client.containers.get(_ls(crew)["ticker"]["container"]).logs()
    assert b"\x1b[1;32mtick 1" in raw  # ...though the agent did write them


def test_up_of_a_running_agent_says_when_its_definition_changed(crew):
    first = crowd(crew, "up", "alpha")
    assert first.returncode == 0 and "restart" not in first.stdout
    again = crowd(crew, "up", "alpha")
    assert again.returncode == 0 and "restart" not in again.stdout
    _write_agent(crew, "alpha", 'command: [bash, -c, "echo changed; sleep infinity"]\n')
    changed = crowd(crew, "up", "alpha")
    assert changed.returncode == 0
    assert "`crowdtui restart alpha` applies the current one" in changed.stdout
