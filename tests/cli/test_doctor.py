"""`crowdtui doctor` against the real engine here, a wrong DOCKER_HOST, a host that runs,
and a secrets key others can read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

CROWDTUI = [sys.executable, "-m", "crowdtui"]


def doctor(ws, *extra: str, env: dict | None = None) -> tuple[int, dict]:
    proc = subprocess.run(CROWDTUI + ["doctor", "--json", "-w", str(ws.root), *extra], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})
    return proc.returncode, json.loads(proc.stdout)


def by_area(report: dict, area: str) -> list[dict]:
    return [c for c in report["checks"] if c["area"] == area]


@pytest.mark.docker
def test_a_ready_machine_passes_with_the_hub_warned(sample_workspace, agent_image, tmp_path):
    code, report = doctor(sample_workspace, env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert code == 0 and report["ok"] is True, report
    (engine,) = by_area(report, "engine")
    assert engine["status"] == "ok" and "API" in engine["detail"]
    images = by_area(report, "image")
    assert [i["status"] for i in images] == ["ok"] and agent_image in images[0]["detail"]
    (hub,) = by_area(report, "hub")
    assert hub["status"] == "warn" and "crowdtui hub" in hub["fix"]
    assert all(c["status"] == "ok" for c in by_area(report, "permissions") + by_area(report, "disk")
               if os.geteuid() == 0)
    assert by_area(report, "disk"), report


@pytest.mark.docker
def test_a_wrong_docker_host_fails_and_says_how_to_fix_it(sample_workspace, tmp_path):
    sock = tmp_path / "no-engine.sock"
    proc = subprocess.run(CROWDTUI + ["doctor", "-w", str(sample_workspace.root)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DOCKER_HOST": f"unix://{sock}"})
    assert proc.returncode == 1
    assert f"FAIL  engine       no Docker engine answers at unix://{sock}" in proc.stdout, proc.stdout
    assert f"fix: nothing listens at {sock}: unset DOCKER_HOST" in proc.stdout
    assert "SKIP  image" in proc.stdout and proc.stdout.rstrip().endswith("something must be fixed (FAIL above)")
    code, report = doctor(sample_workspace, env={"DOCKER_HOST": f"unix://{sock}"})
    assert code == 1 and report["ok"] is False
    assert [c["status"] for c in by_area(report, "engine") + by_area(report, "image")] == ["fail", "skip"]


@pytest.mark.docker
def test_a_missing_image_fails_with_the_build_command(sample_workspace, agent_image):
    config = sample_workspace.root / "crowd.toml"
    config.write_text(config.read_text().replace('image = ""', 'image = "crowdtui-agent:not-built-here"'))
    code, report = doctor(sample_workspace)
    assert code == 1
    (image,) = by_area(report, "image")
    assert image["status"] == "fail" and "crowdtui-agent:not-built-here is not built" in image["detail"]
    assert image["fix"] == "set by [runtime] image in crowd.toml: build or load crowdtui-agent:not-built-here, " \
        "or empty that setting (then `crowdtui image build`)"
    config.write_text(config.read_text().replace('image = "crowdtui-agent:not-built-here"', 'image = ""'))
    (sample_workspace.root / "agents" / "echo" / "AGENT.md").write_text(
        "---\nname: echo\ndescription: x\nimage: crowdtui-agent:also-missing\n---\nbody\n")
    code, report = doctor(sample_workspace)
    bad = [c for c in by_area(report, "image") if c["status"] == "fail"]
    assert code == 1 and [c["fix"] for c in bad] == [
        "named by image: in agents/echo/AGENT.md: build or load crowdtui-agent:also-missing, or remove that line"]


@pytest.mark.docker
def test_a_running_host_is_ok(sample_workspace, agent_image):
    host = subprocess.Popen(CROWDTUI + ["hub", "--json", "--no-dispatch", "-w", str(sample_workspace.root)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        ready = json.loads(host.stdout.readline())
        code, report = doctor(sample_workspace)
        (hub,) = by_area(report, "hub")
        assert hub["status"] == "ok" and f"pid {ready['pid']}" in hub["detail"], hub
    finally:
        os.killpg(host.pid, signal.SIGINT)
        try:
            host.wait(timeout=30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()


def test_a_secrets_key_others_can_read_fails(sample_workspace, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "CROWD_SECRET_KEY": ""}
    key = tmp_path / "config" / "crowdtui" / "keys" / f"{sample_workspace.id}.key"  # crowdtui.secrets.key_file_path
    key.parent.mkdir(parents=True)
    key.write_text("ab" * 32 + "\n")
    key.chmod(0o644)
    code, report = doctor(sample_workspace, env=env)
    assert code == 1
    (bad,) = [c for c in by_area(report, "permissions") if c["status"] == "fail"]
    assert "mode 644" in bad["detail"] and bad["fix"] == f"chmod 600 {key}"
    key.chmod(0o600)
    code, report = doctor(sample_workspace, env=env)
    assert not [c for c in by_area(report, "permissions") if c["status"] == "fail"]
