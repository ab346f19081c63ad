"""The agent image, built without a registry, on the real engine."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from crowdtui.runtime import image as image_mod
from crowdtui.runtime.image import ensure_image, image_tag

pytestmark = pytest.mark.docker


def _run(client, tag: str, script: str) -> str:
    out = client.containers.run(
        tag, ["sh", "-c", script], network_mode="none", remove=True, stdout=True, stderr=True
    )
    return out.decode().strip()


def test_smoke_python_in_agent_image_with_no_network(docker_client, agent_image):
    assert _run(docker_client, agent_image, "python3 --version").startswith("Python 3.")


def test_agent_image_has_tools_and_runs_as_agent(docker_client, agent_image):
    out = _run(
        docker_client,
        agent_image,
        "for t in bash socat tini git python3; do command -v $t || echo MISSING $t; done; "
        "id -u; id -un; echo $HOME; pwd; test -f /etc/ssl/certs/ca-certificates.crt && echo certs",
    )
    assert "MISSING" not in out
    lines = out.splitlines()
    assert lines[-5:] == ["1000", "agent", "/home/agent", "/home/agent", "certs"]


def test_agent_image_entrypoint_is_tini_and_helpers_are_executable(docker_client, agent_image):
    attrs = docker_client.images.get(agent_image).attrs["Config"]
    assert attrs["Entrypoint"][0] == "/usr/bin/tini"
    assert attrs["Cmd"] == ["crowd-agent"]
    assert attrs["User"] == "agent"
    # every helper in docker/bin/ is in /usr/local/bin, executable by the agent user
    names = sorted(p.name for p in image_mod.docker_dir().joinpath("bin").iterdir() if p.is_file())
    if names:
        out = _run(docker_client, agent_image,
                   " ".join(f"test -x /usr/local/bin/{n} && echo ok-{n};" for n in names))
        assert out.split() == [f"ok-{n}" for n in names]


def test_second_ensure_is_a_no_op_returning_the_same_tag(docker_client, agent_image):
    # (ensured once more here: docker/ may have changed since the session fixture ran)
    tag = ensure_image(docker_client, progress=lambda line: None)
    before = docker_client.images.get(tag).id
    lines: list[str] = []
    assert ensure_image(docker_client, progress=lines.append) == tag == image_tag()
    assert lines == []  # nothing was built, imported or bootstrapped
    assert docker_client.images.get(tag).id == before
    assert docker_client.images.get("crowdtui-agent:latest").id == before


def test_tag_is_a_hash_of_the_docker_folder(tmp_path, monkeypatch):
    tag = image_tag()
    assert tag.startswith("crowdtui-agent:") and len(tag.split(":")[1]) == 16
    # a copy of docker/ hashes the same; changing any file changes the tag
    copy = tmp_path / "docker"
    subprocess.run(["cp", "-a", str(image_mod.docker_dir()), str(copy)], check=True)
    monkeypatch.setattr(image_mod, "docker_dir", lambda: copy)
    assert image_tag() == tag
    (copy / "bin" / "extra-tool").write_text("#!/bin/sh\n")
    assert image_tag() != tag


def test_cli_image_build_prints_the_tag_when_present(agent_image):
    out = subprocess.run(
        [sys.executable, "-m", "crowdtui", "image", "build"], capture_output=True, text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == image_tag()


def test_cli_image_build_without_engine_says_so(tmp_path):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no.sock", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "crowdtui", "image", "build"], capture_output=True, text=True,
        timeout=60, env=env,
    )
    assert out.returncode == 3
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Docker engine answers" in lines[0], out.stderr


def _make_rootfs_in_subprocess(tmp_path, env_extra: dict[str, str], user: str | None = None):
    """Run the root filesystem step with an empty cache, as a person would hit it."""
    code = "from crowdtui.runtime.image import make_rootfs; make_rootfs(print)"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "CROWD_CACHE": str(tmp_path / "cache"),
           "HOME": str(tmp_path), **env_extra}
    argv = [sys.executable, "-c", code]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)


def test_missing_debootstrap_says_how_to_install_it(tmp_path):
    out = _make_rootfs_in_subprocess(tmp_path, {"CROWD_DEBOOTSTRAP": str(tmp_path / "none")})
    assert out.returncode != 0
    assert "apt-get install debootstrap" in out.stderr.strip().splitlines()[-1]
    assert not list((tmp_path / "cache").glob("rootfs-*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_debootstrap_as_non_root_says_to_run_as_root():
    with tempfile.TemporaryDirectory(prefix="crowd-nonroot-") as tmp:
        os.chmod(tmp, 0o777)  # pytest's own tmp folders are root-only
        out = _make_rootfs_in_subprocess(Path(tmp), {}, user="65534")
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "needs root" in last and "sudo crowdtui image build" in last


def test_cli_image_ls_and_tag_show_the_current_image(agent_image):
    tag = subprocess.run([sys.executable, "-m", "crowdtui", "image", "tag"], capture_output=True,
                         text=True, timeout=60)
    assert tag.returncode == 0 and tag.stdout.strip() == image_tag()
    out = subprocess.run([sys.executable, "-m", "crowdtui", "image", "ls", "--json"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    rows = json.loads(out.stdout)
    current = [r for r in rows if r["current"]]
    assert len(current) == 1 and image_tag() in current[0]["tags"]
    assert "crowdtui-agent:latest" in current[0]["tags"]
    assert any(t.startswith("crowdtui-base:") for r in rows for t in r["tags"])
