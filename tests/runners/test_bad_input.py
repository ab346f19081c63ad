"""What a user sees when a runner cannot be used: one clear line each, nothing started."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crowdtui.errors import CrowdError
from crowdtui.roster import load_roster
from crowdtui.runtime.containers import Runtime
from crowdtui.runtime.runner_image import tarball_name
from crowdtui.runners import runner_named

pytestmark = pytest.mark.docker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(ws, front: str) -> None:
    (ws.agents_dir / "quill").mkdir(parents=True, exist_ok=True)
    (ws.agents_dir / "quill" / "AGENT.md").write_text(f"---\n{front}\n---\nPersona.\n")


def cli(ws, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, **(env or {})})


def containers_of(docker_client, ws) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"crowdtui.workspace={ws.id}"})


async def test_a_runner_whose_secret_is_not_set_starts_nothing(workspace, store, docker_client, claude_image):
    write(workspace, "runner: claude-code")
    agent = load_roster(workspace).get("quill")
    from crowdtui.secrets import Vault

    runtime = Runtime(workspace, docker_client, store=store)
    with pytest.raises(CrowdError) as err:  # no vault yet
        await runtime.start(agent)
    assert str(err.value) == "no secret key: set CROWD_SECRET_KEY or create secrets first with `crowdtui secret set`"
    await Vault.open(workspace, store).set("GITHUB_TOKEN", "x")
    with pytest.raises(CrowdError) as err:  # a vault without the runner's key
        await runtime.start(agent)
    assert str(err.value) == "secret ANTHROPIC_API_KEY is not set; run `crowdtui secret set ANTHROPIC_API_KEY`"
    assert containers_of(docker_client, workspace) == []


async def test_an_image_not_built_for_the_runner_says_how_to_build_it(workspace, store, docker_client, agent_image):
    from crowdtui.secrets import Vault

    (workspace.root / "crowd.toml").write_text('[runners.claude-code]\nversion = "0.0.1-never-built"\n')
    from crowdtui.workspace import load_workspace

    ws = load_workspace(workspace.root)
    write(ws, "runner: claude-code")
    await Vault.open(ws, store).set("ANTHROPIC_API_KEY", "sk-ant-test-x")
    agent = load_roster(ws).get("quill")
    runtime = Runtime(ws, docker_client, store=store)
    with pytest.raises(CrowdError) as err:
        await runtime.start(agent)
    tag = runtime.image_for(agent)
    assert str(err.value) == (f"agent quill: the claude-code image {tag} is not built; run "
                              "`crowdtui image build --runner claude-code`")
    assert containers_of(docker_client, ws) == []
    assert not (ws.home_dir("quill") / ".claude.json").exists()  # nothing prepared either


def test_unknown_runner_on_the_command_line(workspace):
    out = cli(workspace, "image", "build", "--runner", "cursor")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].endswith(
        "'cursor' is not a runner; runners are script, claude-code, codex, gemini")


def test_unreachable_npm_registry_is_one_line_and_nothing_cached(workspace, tmp_path, agent_image):
    (workspace.root / "crowd.toml").write_text('[runners.codex]\nversion = "0.170.9"\n')  # never built here
    env = {"npm_config_registry": "http://127.0.0.1:9/", "npm_config_fetch_retries": "0",
           "npm_config_cache": str(tmp_path / "npm-cache"), "CROWD_CACHE": str(tmp_path / "cache")}
    out = cli(workspace, "image", "build", "--runner", "codex", env=env)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()
    assert len(last) == 1, out.stderr
    assert last[0].startswith("crowdtui: npm could not fetch @openai/codex@0.170.9-linux-x64 (")
    assert last[0].endswith("check that the registry (`npm config get registry`) is reachable from this "
                            "machine, then retry")
    pkg = runner_named("codex").packages[0]
    assert not (tmp_path / "cache" / "npm" / tarball_name(pkg, "0.170.9")).exists()


def test_no_npm_at_all(workspace, tmp_path):
    (workspace.root / "crowd.toml").write_text('[runners.gemini]\nversion = "0.60.9"\n')  # never built here
    out = cli(workspace, "image", "build", "--runner", "gemini",
              env={"CROWD_NPM": "npm-that-is-not-here", "CROWD_CACHE": str(tmp_path / "cache")})
    assert out.returncode != 0
    assert out.stderr.strip() == ("crowdtui: npm is not installed on this machine; install Node.js with npm "
                                  "(Debian: apt-get install npm) so crowdtui can fetch the runner's packages "
                                  "on the host")
