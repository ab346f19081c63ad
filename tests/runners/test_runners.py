"""Runner keys in AGENT.md and what each runner makes of a definition (no engine needed)."""

from __future__ import annotations

import json

import pytest

from crowdtui.agent_folder import home_folder
from crowdtui.roster import RUNNERS, load_roster
from crowdtui.runners import all_runners, effective, runner_for, runner_settings
from crowdtui.runtime.containers import Runtime


def write(ws, name, front: str, body: str = "Persona text.") -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(f"---\n{front}\n---\n{body}\n")


def test_every_runner_the_roster_accepts_has_a_module():
    assert [r.name for r in all_runners()] == list(RUNNERS)


def test_unknown_runner_and_wrong_permission_mode_are_located_problems(workspace):
    write(workspace, "a", "runner: cursor")
    write(workspace, "b", "runner: claude-code\npermission_mode: yolo")
    write(workspace, "c", "base_url: ftp://x")
    roster = load_roster(workspace)
    got = sorted(str(p) for p in roster.errors)
    assert got == [
        "agents/a/AGENT.md:2: key 'runner': 'cursor' is not one of script, claude-code, codex, gemini",
        "agents/b/AGENT.md:3: key 'permission_mode': 'yolo' is not a permission mode of runner claude-code; "
        "give one of default, acceptEdits, plan, auto, dontAsk, bypassPermissions",
        "agents/c/AGENT.md:2: key 'base_url': 'ftp://x' is not an http(s) URL; "
        "give e.g. https://gateway.example.com:8443",
    ]
    assert not roster.agents


def test_default_runner_is_the_scripted_agent_and_changes_nothing(workspace):
    write(workspace, "s", "name: s")
    agent = load_roster(workspace).get("s")
    assert agent.runner == "script" and effective(agent, workspace.config) is agent
    config = Runtime(workspace, client=object()).container_config(agent)
    assert config["command"] is None and "working_dir" not in config
    assert any(m["Target"] == "/home/agent/CLAUDE.md" for m in config["mounts"])


def test_claude_code_definition_maps_to_flags_secret_egress_and_image(workspace):
    write(workspace, "q", "runner: claude-code\nmodel: claude-opus-4-1\ntools: [mcp__crowd, Read]\n"
                          "permission_mode: acceptEdits")
    agent = load_roster(workspace).get("q")
    eff = effective(agent, workspace.config)
    assert eff.secrets == ("ANTHROPIC_API_KEY",) and eff.egress == ("api.anthropic.com:443",)
    assert eff.network == "allowlist"
    config = Runtime(workspace, client=object()).container_config(agent)
    assert config["command"] == ["crowd-entry", "crowd-claude", "--append-system-prompt-file",
                                 "/home/agent/.claude/CLAUDE.md", "--model", "claude-opus-4-1",
                                 "--allowedTools", "mcp__crowd,Read", "--permission-mode", "acceptEdits"]
    env = config["environment"]
    assert env["ENABLE_TOOL_SEARCH"] == "false" and env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CROWD_SECRETS"] == "ANTHROPIC_API_KEY" and "ANTHROPIC_API_KEY" not in env
    assert config["network_mode"] == "none" and config["working_dir"] == "/workspace"
    assert config["image"].startswith("crowdtui-claude-code:")
    assert any(m["Target"] == "/home/agent/.claude/CLAUDE.md" for m in config["mounts"])


def test_base_url_from_the_definition_or_crowd_toml_sets_env_and_egress(workspace):
    write(workspace, "q", "runner: claude-code\nbase_url: https://llm.example.com:8443/anthropic")
    agent = load_roster(workspace).get("q")
    eff = effective(agent, workspace.config)
    assert eff.egress == ("llm.example.com:8443",)
    runner = runner_for(agent)
    assert runner.environment(agent, {})["ANTHROPIC_BASE_URL"] == "https://llm.example.com:8443/anthropic"
    write(workspace, "r", "runner: codex")
    other = load_roster(workspace).get("r")
    cfg = {"runners": {"codex": {"base_url": "http://gw.internal:4000"}}}
    assert effective(other, cfg).egress == ("gw.internal:4000",)
    assert runner_settings(cfg, "codex") == {"base_url": "http://gw.internal:4000"}


def test_claude_code_seeds_its_home_through_the_agent_folder_and_keeps_its_own_state(workspace):
    write(workspace, "q", "runner: claude-code")
    agent = load_roster(workspace).get("q")
    home = home_folder(workspace, "q")
    home.ensure_dir("")
    home.write(".claude.json", json.dumps({"numStartups": 7, "projects": {"/other": {"x": 1}}}))
    runner_for(agent).seed_home(home, agent, {})
    state = json.loads((workspace.home_dir("q") / ".claude.json").read_text())
    assert state["numStartups"] == 7 and state["projects"]["/other"] == {"x": 1}
    assert state["hasCompletedOnboarding"] is True
    assert state["projects"]["/workspace"]["hasTrustDialogAccepted"] is True
    assert state["mcpServers"]["crowd"]["command"] == "crowd-mcp-bridge"
    settings = json.loads((workspace.home_dir("q") / ".claude" / "settings.json").read_text())
    assert settings["apiKeyHelper"] == "printenv CROWD_ANTHROPIC_API_KEY"


@pytest.mark.parametrize("name,file,needle", [("codex", ".codex/config.toml", "[mcp_servers.crowd]"),
                                              ("gemini", ".gemini/settings.json", '"crowd-mcp-bridge"')])
def test_codex_and_gemini_seed_the_crowd_server(workspace, name, file, needle):
    write(workspace, "x", f"runner: {name}")
    agent = load_roster(workspace).get("x")
    home = home_folder(workspace, "x")
    home.ensure_dir("")
    runner_for(agent).seed_home(home, agent, {})
    runner_for(agent).seed_home(home, agent, {})  # twice: still one entry
    text = (workspace.home_dir("x") / file).read_text()
    assert text.count(needle) == 1


def test_runners_sit_between_roster_and_runtime():
    """crowdtui.runners loads roster, agent_folder and errors, never runtime, hub or the engine."""
    import ast
    import subprocess
    import sys

    code = ("import sys, crowdtui.runners as r; r.all_runners(); "
            "print(sorted(m for m in sys.modules if m.startswith('crowdtui.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = ast.literal_eval(out.stdout.strip())
    assert not [m for m in loaded if m.split(".")[1] in ("runtime", "hub", "dispatch", "tui", "cli")], loaded
    assert "docker" not in out.stdout


def test_init_with_claude_code_gives_a_loadable_claude_code_member(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "crowdtui", "init", str(tmp_path / "w"), "--empty",
                          "--with", "claude-code"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "crowdtui secret set ANTHROPIC_API_KEY" in out.stdout
    roster = load_roster(tmp_path / "w")
    assert not roster.problems and roster.get("claude").runner == "claude-code"
    bad = subprocess.run([sys.executable, "-m", "crowdtui", "init", str(tmp_path / "x"), "--with", "cursor"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "crowdtui: no sample for runner 'cursor'; --with takes claude-code"
    assert not (tmp_path / "x").exists()


def test_upgrade_pins_move_in_crowd_toml_and_keep_everything_else(tmp_path):
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import pin_versions

    toml = tmp_path / "crowd.toml"
    toml.write_text('[workspace]\nname = "w"\n\n[runners.gemini]\nversion = "0.1.0"  # old\n\n[hub]\nhttp_port = 0\n')
    pin_versions(toml, runner_named("gemini"), {"version": "0.61.0", "node_version": "22.23.5"})
    pin_versions(toml, runner_named("claude-code"), {"version": "2.1.333"})
    import tomllib

    data = tomllib.loads(toml.read_text())
    assert data["workspace"] == {"name": "w"} and data["hub"] == {"http_port": 0}
    assert data["runners"]["gemini"] == {"version": "0.61.0", "node_version": "22.23.5"}
    assert data["runners"]["claude-code"] == {"version": "2.1.333"}


def test_a_cached_package_is_never_fetched_again(tmp_path, monkeypatch):
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import fetch_package, tarball_name

    monkeypatch.setenv("CROWD_CACHE", str(tmp_path))
    monkeypatch.setenv("CROWD_NPM", "no-npm-here")  # any npm call would fail
    pkg = runner_named("claude-code").packages[0]
    cached = tmp_path / "npm" / tarball_name(pkg, "9.9.9")
    cached.parent.mkdir()
    cached.write_bytes(b"tarball")
    lines = []
    assert fetch_package(pkg, "9.9.9", lines.append) == cached
    assert lines == ["@anthropic-ai/claude-code-linux-x64@9.9.9: cached (0 MB)"]
