"""Codex CLI (``runner: codex``).

Image: ``@openai/codex@<version>-linux-x64`` ships the Rust ``codex`` binary (no Node) under
``package/vendor/<target>/bin/``; ``crowd-codex`` finds and runs it.
Configuration: ``~/.codex/config.toml`` gets ``[mcp_servers.crowd]`` (the bridge) and marks
/workspace trusted; the persona is ``~/.codex/AGENTS.md`` (Codex's global instructions).
Flags: ``model`` -> ``--model``; ``permission_mode`` -> ``--ask-for-approval``. Codex has no
allow-list of tools on its command line, so ``tools`` is not passed.
"""

from __future__ import annotations

from typing import Any

from crowdtui.agent_folder import AgentFolder, UnsafeEntry
from crowdtui.roster import AgentDef
from crowdtui.runners.base import HOME, SERVER_NAME, WORKSPACE, Layer, NpmPackage, Runner

LAUNCHER = """#!/bin/sh
# crowd-codex: run the codex binary unpacked from @openai/codex-linux-x64
# (layout 1: vendor/<target>/bin/codex, with codex-path/ (rg) on the PATH; older: codex/codex)
for dir in /opt/crowd/codex/package/vendor/*; do
    if [ -x "$dir/bin/codex" ]; then PATH="$dir/codex-path:$PATH" exec "$dir/bin/codex" "$@"; fi
    if [ -x "$dir/codex/codex" ]; then exec "$dir/codex/codex" "$@"; fi
done
echo "crowd-codex: no codex binary under /opt/crowd/codex; rebuild with crowdtui image build --runner codex" >&2
exit 127
"""
BEGIN, END = "# --- crowdtui: begin (rewritten at each start) ---", "# --- crowdtui: end ---"


class CodexRunner(Runner):
    name = "codex"
    persona_file = "AGENTS.md"
    persona_target = f"{HOME}/.codex/AGENTS.md"
    secret = "OPENAI_API_KEY"
    api_host = "api.openai.com"
    base_url_env = "OPENAI_BASE_URL"
    program = "codex"
    packages = (NpmPackage("@openai/codex", "0.171.0", suffix="-linux-x64", folder="codex"),)
    working_dir = WORKSPACE

    def layer(self, tarballs: dict[str, str]) -> Layer:
        base = super().layer(tarballs)
        return Layer(base.lines + ("COPY crowd-codex /usr/local/bin/crowd-codex",), {"crowd-codex": LAUNCHER})

    def command(self, agent: AgentDef, settings: dict[str, Any]) -> list[str]:
        cmd = ["crowd-codex"]
        if agent.model:
            cmd += ["--model", agent.model]
        if agent.permission_mode:
            cmd += ["--ask-for-approval", agent.permission_mode]
        return cmd

    def seed_home(self, home: AgentFolder, agent: AgentDef, settings: dict[str, Any]) -> None:
        home.ensure_dir(".codex")
        try:
            raw = home.read(".codex/config.toml")
        except UnsafeEntry:
            raw = None
        text = raw.decode("utf-8", "replace") if raw else ""
        if BEGIN in text and END in text:  # the agent's own settings around ours stay
            head, _, rest = text.partition(BEGIN)
            text = head + rest.partition(END)[2].lstrip("\n")
        ours = "\n".join([
            BEGIN,
            f"[mcp_servers.{SERVER_NAME}]",
            'command = "crowd-mcp-bridge"',
            "args = []",
            "",
            f'[projects."{WORKSPACE}"]',
            'trust_level = "trusted"',
            END,
        ])
        home.write(".codex/config.toml", ours + "\n" + text, mode=0o600)


RUNNER = CodexRunner()
