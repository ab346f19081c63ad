"""The roster's model: an agent's definition, the loaded roster (its tree and tiers), the
problems found while loading, and the allowed values of each key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qms.names import OPERATOR

LAUNCH_POLICIES = ("manual", "on_task", "always", "per_message")
SHUTDOWN_POLICIES = ("manual", "inbox_empty", "idle")
RESTART_POLICIES = ("no", "on-failure", "always")
#: the restart policy an agent gets when its AGENT.md names none, by launch policy
RESTART_DEFAULTS = {"manual": "no", "on_task": "on-failure", "always": "always", "per_message": "no"}
NETWORK_POLICIES = ("none", "allowlist", "open")
WORKSPACE_MODES = ("ro", "rw")
# The programs an agent can be (one module each in crowdtui.runners; "script" is crowd-agent)
# and the permission modes each accepts (its own words, passed to its flag).
RUNNERS = ("script", "claude-code", "codex", "gemini")
PERMISSION_MODES: dict[str, tuple[str, ...]] = {
    "script": (),
    "claude-code": ("default", "acceptEdits", "plan", "auto", "dontAsk", "bypassPermissions"),
    "codex": ("untrusted", "on-failure", "on-request", "never"),
    "gemini": ("default", "auto_edit", "yolo"),
}
# How the console drives an agent: its terminal, or structured turns over the Agent Client
# Protocol through its runner's adapter (only the runners that have one).
MODES = ("terminal", "acp")
ACP_RUNNERS = ("claude-code", "gemini")

AGENT_FILE = "AGENT.md"
SKILL_FILE = "SKILL.md"
SKILLS_DIR = "skills"
RESERVED_NAMES = (OPERATOR,)
MAX_FILE_BYTES = 1024 * 1024

# Linux capabilities a definition may keep (all others are dropped).
CAPABILITIES = frozenset(
    """AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN
    DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE
    LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE
    NET_BROADCAST NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT
    SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split()
)


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
    disk: str = "1g"  # the home's own filesystem (crowdtui.runtime.disk); "none" = unlimited


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
    restart: str | None = None  # no | on-failure | always; None: RESTART_DEFAULTS[launch]
    grants: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()  # Linux capabilities to keep (all others dropped)
    workspace_mode: str = "ro"  # how /workspace is mounted
    announce: bool = True  # type a notice into the terminal when the inbox gets an item
    # runner keys (crowdtui.runners): the program the agent is, and how it is driven
    runner: str = "script"
    permission_mode: str | None = None  # the runner's own mode name; None: its default
    mode: str = "terminal"  # terminal | acp (structured turns through the runner's ACP adapter)
    base_url: str | None = None  # the model API (a gateway); None: crowd.toml's, else the vendor's
    engine: str | None = None  # the engine (crowd.toml [engines.NAME], or local); None: placement
    engine_labels: tuple[str, ...] = ()  # labels an engine must have for placement to pick it
    spawned_by: str | None = None  # the agent (or operator) whose spawn_agent wrote this file
    persona: str = ""  # Markdown body, mounted as CLAUDE.md
    skills: dict[str, str] = field(default_factory=dict)  # skill name -> SKILL.md text


def restart_policy(agent: AgentDef) -> str:
    """The agent's restart policy: its ``restart:`` key, else the default for its launch policy."""
    return agent.restart or RESTART_DEFAULTS.get(agent.launch, "no")


@dataclass(frozen=True)
class Problem:
    """One mistake in the roster, located by file (relative to the workspace), line and key."""

    file: str  # e.g. "agents/lead/AGENT.md"
    line: int  # 1-based line in that file
    key: str | None  # "launch", "resources.cpus", "mounts[1]"; None for the whole file
    message: str
    severity: str = "error"  # "error": the definition did not load; "warning": it did

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: "
        if self.key:
            where += f"key '{self.key}': "
        return where + self.message


@dataclass
class Roster:
    """The loaded roster: good definitions by name, and every problem found."""

    root: Path  # the agents/ folder
    agents: dict[str, AgentDef] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def get(self, name: str) -> AgentDef | None:
        return self.agents.get(name)

    def children(self, name: str) -> list[AgentDef]:
        agent = self.agents.get(name)
        return [self.agents[c] for c in agent.children] if agent else []

    def parent(self, name: str) -> AgentDef | None:
        agent = self.agents.get(name)
        return self.agents.get(agent.parent) if agent and agent.parent else None

    def names(self) -> list[str]:
        return sorted(self.agents)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def __iter__(self) -> Iterator[AgentDef]:
        return iter(sorted(self.agents.values(), key=lambda a: a.rel_path))

    def __len__(self) -> int:
        return len(self.agents)

    def __contains__(self, name: object) -> bool:
        return name in self.agents


@dataclass(frozen=True)
class RosterDiff:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class RosterUpdate:
    """What ``watch_roster`` yields after a reload."""

    roster: Roster
    diff: RosterDiff
