"""What every runner is made of: the :class:`Runner` base (the scripted agent's recipe), its
image :class:`Layer` and npm packages, and the helpers runners seed homes with.

The runner modules (``claude_code``, ``codex``, ``gemini``, ``script``) import this module
and :mod:`crowdtui.runners` collects them, so the package and its runners import in one
direction only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from crowdtui.agent_folder import AgentFolder, UnsafeEntry
from crowdtui.errors import CrowdError
from crowdtui.roster import AgentDef

HOME = "/home/agent"
WORKSPACE = "/workspace"
MCP_SERVER = {"type": "stdio", "command": "crowd-mcp-bridge", "args": [], "env": {}}
SERVER_NAME = "crowd"  # the crowd hub's name in every runner's MCP configuration


class RunnerError(CrowdError):
    """A runner cannot be used as asked (unknown name, bad settings)."""


@dataclass(frozen=True)
class NpmPackage:
    """One npm package a runner's image layer is made from."""

    name: str  # e.g. "@anthropic-ai/claude-code-linux-x64"
    version: str  # the default pin
    setting: str = "version"  # the key in [runners.<name>] that pins it
    suffix: str = ""  # appended to the version in the spec (codex: "-linux-x64")
    folder: str = ""  # where its package/ is unpacked in the image: /opt/crowd/<folder>
    # True: installed on the host with its dependencies (``npm install``), and the resulting
    # node_modules/ tree packed into one tarball (for packages that are not published bundled)
    tree: bool = False

    def spec(self, version: str) -> str:
        return f"{self.name}@{version}{self.suffix}"


@dataclass(frozen=True)
class Layer:
    """What goes on top of the agent image: Dockerfile lines and small generated files.

    ``ADD <tarball> /opt/crowd/<folder>/`` lines unpack the cached npm tarballs in the
    engine (``package/`` inside); ``files`` are written into the build context.
    """

    lines: tuple[str, ...]
    files: dict[str, str]


def runner_settings(config: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """``[runners.<name>]`` of a workspace's crowd.toml (``Workspace.config``), or {}."""
    section = ((config or {}).get("runners") or {}).get(name) or {}
    return section if isinstance(section, dict) else {}


class Runner:
    """The scripted agent's recipe, and the base of every other runner."""

    name = "script"
    persona_file = "CLAUDE.md"  # the file name the program reads its instructions from
    persona_target = f"{HOME}/CLAUDE.md"  # where the persona is mounted in the container
    secret: str | None = None  # the vault name of the model API key
    api_host: str | None = None  # the vendor's API host (egress on 443)
    base_url_env: str | None = None  # the variable that points the program at a gateway
    program: str | None = None  # the executable the image layer provides
    packages: tuple[NpmPackage, ...] = ()
    working_dir: str | None = None  # None: the image's (the home)
    acp_program: str | None = None  # the Agent Client Protocol adapter the image provides (mode: acp)

    # ---- image

    def versions(self, settings: dict[str, Any]) -> dict[str, str]:
        """Package name -> pinned version (crowd.toml's pin, else the default)."""
        out = {}
        for pkg in self.packages:
            pinned = settings.get(pkg.setting, pkg.version)
            if not isinstance(pinned, str) or not pinned.strip():
                raise RunnerError(f"[runners.{self.name}] {pkg.setting} in crowd.toml must be a version "
                                  f"text like \"{pkg.version}\"")
            out[pkg.name] = pinned.strip()
        return out

    def layer(self, tarballs: dict[str, str]) -> Layer:
        """The image layer, given each package's tarball file name in the build context."""
        lines = [f"ADD {tarballs[p.name]} /opt/crowd/{p.folder}/" for p in self.packages]
        return Layer(tuple(lines), {})

    # ---- the container

    def base_url(self, agent: AgentDef, settings: dict[str, Any]) -> str | None:
        url = agent.base_url or settings.get("base_url")
        return str(url).rstrip("/") if url else None

    def egress(self, agent: AgentDef, settings: dict[str, Any]) -> tuple[str, ...]:
        """The destinations the program itself needs: the gateway's host, else the vendor's API."""
        url = self.base_url(agent, settings)
        if url:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return (f"{parts.hostname}:{port}",)
        return (f"{self.api_host}:443",) if self.api_host else ()

    def environment(self, agent: AgentDef, settings: dict[str, Any]) -> dict[str, str]:
        url = self.base_url(agent, settings)
        return {self.base_url_env: url} if url and self.base_url_env else {}

    def command(self, agent: AgentDef, settings: dict[str, Any]) -> list[str] | None:
        """The command line (None: the image's own, crowd-agent)."""
        return None

    def acp_command(self, agent: AgentDef, settings: dict[str, Any]) -> list[str] | None:
        """The command that runs the runner's ACP adapter on stdio (None: the runner has none)."""
        return [self.acp_program] if self.acp_program else None

    def seed_home(self, home: AgentFolder, agent: AgentDef, settings: dict[str, Any]) -> None:
        """Write the program's configuration into the agent's home (before each start)."""

    def notice_keys(self, line: str) -> bytes:
        """What the hub types to announce new inbox items: the line and Enter."""
        return (line + "\r").encode()


# ---- helpers for runners' seeding


def read_json(home: AgentFolder, rel: str) -> dict[str, Any]:
    """A JSON object the program keeps in the home (its own state stays), or {} when missing,
    unreadable, not an object, or something the agent put in the way."""
    try:
        raw = home.read(rel)
    except UnsafeEntry:
        return {}
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write_json(home: AgentFolder, rel: str, data: dict[str, Any], *, mode: int = 0o600) -> None:
    home.write(rel, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=mode)
