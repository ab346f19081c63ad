"""The roster: agents defined as folders under ``agents/``.

This module holds the data model (``AgentDef``). Loading, validation and hot reload
are filled in by the roster work (see issue 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

LAUNCH_POLICIES = ("manual", "on_task", "always", "per_message")
SHUTDOWN_POLICIES = ("manual", "inbox_empty", "idle")
NETWORK_POLICIES = ("none", "allowlist", "open")


@dataclass(frozen=True)
class Mount:
    source: str  # host path (relative paths are relative to the workspace root)
    target: str  # path inside the container
    mode: str = "ro"  # "ro" | "rw"


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    memory: str = "512m"
    pids: int = 256


@dataclass(frozen=True)
class AgentDef:
    """One agent: its AGENT.md front matter, persona and place in the tree."""

    name: str
    file: Path  # .../agents/<path>/AGENT.md
    rel_path: str  # e.g. "lead/research" (folder relative to agents/)
    tier: int  # 0 for agents/<x>/AGENT.md, 1 one level deeper, ...
    parent: str | None = None
    children: tuple[str, ...] = ()
    description: str = ""
    # Claude Code subagent keys
    tools: tuple[str, ...] = ()
    model: str | None = None
    # crowd keys
    image: str | None = None  # None: the workspace's default agent image
    command: tuple[str, ...] | None = None  # None: the image's default (crowd-agent)
    mounts: tuple[Mount, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    network: str = "none"
    egress: tuple[str, ...] = ()  # "host-glob:port" entries for network: allowlist
    resources: Resources = field(default_factory=Resources)
    launch: str = "manual"
    shutdown: str = "manual"
    grants: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()  # Linux capabilities to keep (all others dropped)
    workspace_mode: str = "ro"  # how /workspace is mounted
    announce: bool = True  # type a notice into the terminal when the inbox gets an item
    persona: str = ""  # Markdown body, mounted as CLAUDE.md
    skills: dict[str, str] = field(default_factory=dict)  # skill name -> SKILL.md text
