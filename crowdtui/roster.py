"""The roster: agents defined as folders under ``agents/``.

Each ``agents/<path>/AGENT.md`` is Markdown with YAML front matter: Claude Code's
subagent keys (name, description, tools, model) plus crowd keys (image, command,
mounts, env, secrets, network, egress, resources, launch, shutdown, grants,
capabilities, workspace, announce) and the runner keys (runner, permission_mode,
base_url; see crowdtui.runners). The body is the agent's persona. Folder depth is
the tier (``agents/x/AGENT.md`` is tier 0); an AGENT.md in a folder below another
agent's folder is that agent's child. ``skills/<name>/SKILL.md`` beside an AGENT.md
are that agent's skills.

Loading never stops at the first mistake. Every mistake becomes a :class:`Problem`
(file, line, key, what is allowed):

- ``error``: the definition is not loaded (a broken file, a value that is not
  allowed, a bad or duplicate name). On a reload (``previous`` given) an agent whose
  file turns bad keeps its last good definition, so a half-saved edit never stops or
  forgets a running agent.
- ``warning``: the agent loads and the problem is pointed out (an unknown key, which is
  ignored; a child whose parent did not load, which loads without a parent and so
  escalates to the operator until the parent is fixed).

``watch_roster`` reloads on change (watchfiles) and yields what was added, changed
and removed; ``record_roster_changes`` / ``sync_roster`` put that into the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shlex
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crowdtui.grant_rules import GrantRuleError, parse_rule
from qms.names import NAME_RE, OPERATOR

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
    base_url: str | None = None  # the model API (a gateway); None: crowd.toml's, else the vendor's
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


# --------------------------------------------------------------------------- parsing


class _Invalid(Exception):
    """A value that is not allowed; carries the node (for its line) and the message."""

    def __init__(self, node: yaml.Node | None, message: str, key: str | None = None):
        super().__init__(message)
        self.node = node
        self.message = message
        self.key = key


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return "a number"
    return "text"


def _text(value: Any, node: yaml.Node, what: str = "text") -> str:
    if not isinstance(value, str):
        raise _Invalid(node, f"{_kind(value)} is not allowed; give {what}")
    return value


def _text_list(value: Any, node: yaml.Node, what: str, *, comma: bool = False) -> tuple[str, ...]:
    """A list of non-empty strings (or, if ``comma``, one comma-separated string)."""
    if isinstance(value, str) and comma:
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, str):
        value, items = [value], [node]
    elif isinstance(value, list):
        items = node.value
    else:
        raise _Invalid(node, f"{_kind(value)} is not allowed; give a list of {what}")
    out = []
    for i, (item, item_node) in enumerate(zip(value, items)):
        if not isinstance(item, str) or not item.strip():
            raise _Invalid(item_node, f"item {i + 1} is {_kind(item)}; each item must be {what}")
        out.append(item.strip())
    return tuple(out)


def _choice(value: Any, node: yaml.Node, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value) if isinstance(value, str) else _kind(value)
        raise _Invalid(node, f"{shown} is not one of {', '.join(allowed)}")
    return value


def _name(value: Any, node: yaml.Node) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else _kind(value)
        raise _Invalid(
            node,
            f"{shown} is not a valid agent name; use 1-63 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit",
        )
    if value in RESERVED_NAMES:
        raise _Invalid(node, f"{value!r} is reserved for the human operator; choose another name")
    return value


def _command(value: Any, node: yaml.Node) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise _Invalid(node, f"cannot split {value!r} into words ({exc}); use a list") from None
        if not parts:
            raise _Invalid(node, "empty command; give a list like [crowd-agent, --role, worker]")
        return tuple(parts)
    if isinstance(value, list) and value:
        out = []
        for i, (item, item_node) in enumerate(zip(value, node.value)):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise _Invalid(item_node, f"item {i + 1} is {_kind(item)}; each word must be text")
            out.append(str(item))
        return tuple(out)
    raise _Invalid(node, f"{_kind(value)} is not allowed; give a list like [crowd-agent, --role, worker]")


def _mount(value: Any, node: yaml.Node) -> Mount:
    hint = "give 'SOURCE:/TARGET[:ro|rw]' or {source: SOURCE, target: /TARGET, mode: ro|rw}"
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise _Invalid(node, f"{value!r} is not a mount; {hint}")
        source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else "ro"
    elif isinstance(value, dict):
        extra = set(value) - {"source", "target", "mode"}
        if extra:
            raise _Invalid(node, f"unknown mount key {sorted(extra)[0]!r}; {hint}")
        source, target, mode = value.get("source"), value.get("target"), value.get("mode", "ro")
        if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
            raise _Invalid(node, f"a mount needs source and target as text; {hint}")
    else:
        raise _Invalid(node, f"{_kind(value)} is not a mount; {hint}")
    if mode not in WORKSPACE_MODES:
        raise _Invalid(node, f"mount mode {mode!r} is not one of ro, rw")
    if not target.startswith("/") or target.rstrip("/") in ("", "/run/crowd", "/workspace"):
        raise _Invalid(
            node,
            f"mount target {target!r} must be an absolute path inside the container, "
            "other than /, /run/crowd and /workspace",
        )
    if ".." in Path(target).parts:
        raise _Invalid(node, f"mount target {target!r} must not contain '..'")
    return Mount(source=source, target=target, mode=mode)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env(value: Any, node: yaml.Node) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(node, f"{_kind(value)} is not allowed; give a mapping NAME: value")
    out: dict[str, str] = {}
    for key_node, value_node in node.value:
        name = key_node.value
        val = value[name] if name in value else None
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise _Invalid(key_node, f"{name!r} is not a variable name; use letters, digits and '_'",
                           key=f"env.{name}")
        if isinstance(val, bool):
            val = "true" if val else "false"
        if isinstance(val, (int, float)):
            val = str(val)
        if not isinstance(val, str):
            raise _Invalid(value_node, f"{_kind(val)} is not allowed; give text (quote it: '')",
                           key=f"env.{name}")
        out[name] = val
    return out


_EGRESS_RE = re.compile(r"[A-Za-z0-9*][A-Za-z0-9.*-]*:([0-9]{1,5}|\*)")


def _egress(value: Any, node: yaml.Node) -> tuple[str, ...]:
    items = _text_list(value, node, "'host:port' text")
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item, item_node in zip(items, nodes):
        m = _EGRESS_RE.fullmatch(item)
        if not m or (m.group(1) != "*" and not 1 <= int(m.group(1)) <= 65535):
            raise _Invalid(item_node, f"{item!r} is not 'host:port' (the host may use *, e.g. '*.github.com:443')")
    return items


_MEMORY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?", re.IGNORECASE)
_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _resources(value: Any, node: yaml.Node) -> Resources:
    if not isinstance(value, dict):
        raise _Invalid(node, f"{_kind(value)} is not allowed; give a mapping with cpus, memory, pids, disk")
    base = Resources()
    cpus, memory, pids, disk = base.cpus, base.memory, base.pids, base.disk
    for key_node, value_node in node.value:
        key, val = key_node.value, value.get(key_node.value)
        sub = f"resources.{key}"
        if key == "cpus":
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 < val <= 256:
                raise _Invalid(value_node, f"{val!r} is not allowed; give a number of CPUs above 0, e.g. 0.5 or 2", key=sub)
            cpus = float(val)
        elif key == "memory":
            m = _MEMORY_RE.fullmatch(str(val)) if isinstance(val, (str, int)) and not isinstance(val, bool) else None
            if not m:
                raise _Invalid(value_node, f"{val!r} is not a size; give e.g. 512m or 2g", key=sub)
            size = float(m.group(1)) * _UNIT[m.group(2).lower()]
            if size < 6 * 1024**2:
                raise _Invalid(value_node, f"{val!r} is too small; the engine needs at least 6m", key=sub)
            size = int(size)
            memory = f"{size // 1024**2}m" if size % 1024**2 == 0 else f"{size}b"
        elif key == "disk":
            if isinstance(val, str) and val.strip().lower() == "none":
                disk = "none"
                continue
            m = _MEMORY_RE.fullmatch(str(val)) if isinstance(val, (str, int)) and not isinstance(val, bool) else None
            if not m:
                raise _Invalid(value_node, f"{val!r} is not a size; give e.g. 1g or 200m, or none for no limit", key=sub)
            size = int(float(m.group(1)) * _UNIT[m.group(2).lower()])
            if not 32 * 1024**2 <= size <= 16 * 1024**4:
                raise _Invalid(value_node, f"{val!r} is not allowed; give a size from 32m to 16384g, or none", key=sub)
            disk = f"{size // 1024**2}m" if size % 1024**2 == 0 else f"{size}b"
        elif key == "pids":
            if isinstance(val, bool) or not isinstance(val, int) or not 16 <= val <= 1_000_000:
                raise _Invalid(value_node, f"{val!r} is not allowed; give a whole number of processes, at least 16", key=sub)
            pids = val
        else:
            raise _Invalid(key_node, f"unknown key; resources has cpus, memory, pids, disk", key=sub)
    return Resources(cpus=cpus, memory=memory, pids=pids, disk=disk)


def _capabilities(value: Any, node: yaml.Node) -> tuple[str, ...]:
    items = _text_list(value, node, "a capability name like NET_BIND_SERVICE")
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item, item_node in zip(items, nodes):
        cap = item.upper().removeprefix("CAP_")
        if cap not in CAPABILITIES:
            raise _Invalid(item_node, f"{item!r} is not a Linux capability (e.g. NET_BIND_SERVICE, CHOWN)")
        out.append(cap)
    return tuple(out)


def _secrets(value: Any, node: yaml.Node) -> tuple[str, ...]:
    items = _text_list(value, node, "a secret name")
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item, item_node in zip(items, nodes):
        if not _ENV_NAME.fullmatch(item):
            raise _Invalid(item_node, f"{item!r} is not a secret name; use letters, digits and '_'")
    return items


def _grants(value: Any, node: yaml.Node) -> tuple[str, ...]:
    """Grant rules, checked with the hub's own parser (crowdtui.grant_rules) so a bad rule is
    caught here, with its line."""
    items = _text_list(value, node, "a grant rule like '!observe' or 'send_message(to=lead)'")
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item, item_node in zip(items, nodes):
        try:
            parse_rule(item)
        except GrantRuleError as exc:
            raise _Invalid(item_node, str(exc)) from None
    return items


_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?")


def _base_url(value: Any, node: yaml.Node) -> str:
    text = _text(value, node, "a URL like https://gateway.example.com")
    if not _URL_RE.fullmatch(text.strip()):
        raise _Invalid(node, f"{text!r} is not an http(s) URL; give e.g. https://gateway.example.com:8443")
    return text.strip().rstrip("/")


def _bool(value: Any, node: yaml.Node) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(node, f"{_kind(value)} is not allowed; give true or false")
    return value


# key in AGENT.md -> (AgentDef field, converter)
_KEYS: dict[str, tuple[str, Any]] = {
    "name": ("name", _name),
    "description": ("description", lambda v, n: _text(v, n, "a one-line description").strip()),
    "tools": ("tools", lambda v, n: _text_list(v, n, "a tool name", comma=True)),
    "model": ("model", lambda v, n: _text(v, n, "a model name")),
    "image": ("image", lambda v, n: _text(v, n, "an image name like crowdtui-agent:latest")),
    "command": ("command", _command),
    "mounts": ("mounts", lambda v, n: tuple(_mount(i, inode) for i, inode in zip(v, n.value))
               if isinstance(v, list) else (_mount(v, n),)),
    "env": ("env", _env),
    "secrets": ("secrets", _secrets),
    "network": ("network", lambda v, n: _choice(v, n, NETWORK_POLICIES)),
    "egress": ("egress", _egress),
    "resources": ("resources", _resources),
    "launch": ("launch", lambda v, n: _choice(v, n, LAUNCH_POLICIES)),
    "shutdown": ("shutdown", lambda v, n: _choice(v, n, SHUTDOWN_POLICIES)),
    "restart": ("restart", lambda v, n: _choice("no" if v is False else v, n, RESTART_POLICIES)),
    "grants": ("grants", _grants),
    "capabilities": ("capabilities", _capabilities),
    "workspace": ("workspace_mode", lambda v, n: _choice(v, n, WORKSPACE_MODES)),
    "announce": ("announce", _bool),
    "runner": ("runner", lambda v, n: _choice(v, n, RUNNERS)),
    "permission_mode": ("permission_mode", lambda v, n: _text(v, n, "a permission mode")),
    "base_url": ("base_url", _base_url),
}
KNOWN_KEYS = tuple(_KEYS)


@dataclass
class _Parsed:
    """One AGENT.md after parsing: the fields it sets, or why it could not be used."""

    file: Path
    rel_file: str
    folder: tuple[str, ...]  # path parts of its folder below agents/
    fields: dict[str, Any] | None  # None: the definition has errors
    name_line: int = 1
    problems: list[Problem] = field(default_factory=list)


def _split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter or None, body, line of the closing ---). Raises ValueError if unterminated."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n") in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 1
    raise ValueError("the front matter opened by '---' on line 1 is never closed; add a line '---' after it")


def _parse_file(path: Path, rel_file: str, folder: tuple[str, ...]) -> _Parsed:
    parsed = _Parsed(file=path, rel_file=rel_file, folder=folder, fields=None)

    def fail(line: int, key: str | None, message: str, severity: str = "error") -> None:
        parsed.problems.append(Problem(rel_file, line, key, message, severity))

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            fail(1, None, f"the file is {size // 1024} KiB; keep an AGENT.md under "
                          f"{MAX_FILE_BYTES // 1024} KiB (move long material into skills)")
            return parsed
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        fail(line, None, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on this line); "
                         "save the file as UTF-8")
        return parsed
    except OSError as exc:
        fail(1, None, f"cannot read the file ({exc.strerror}); check its permissions")
        return parsed
    try:
        front, body, _ = _split_front_matter(text)
    except ValueError as exc:
        fail(1, None, str(exc))
        return parsed
    fields: dict[str, Any] = {}
    persona = body.strip()
    fields["persona"] = persona + "\n" if persona else ""
    if front is None:
        fail(1, None, "no YAML front matter (a '---' block at the top); loaded with defaults",
             "warning")
        parsed.fields = fields
        return parsed

    try:
        loader = yaml.SafeLoader(front)
    except yaml.reader.ReaderError as exc:  # control characters: refused before parsing starts
        line = front[: exc.position].count("\n") + 2
        fail(line, None, f"front matter holds a control character (#x{exc.character:04x}) on this line; "
                         "remove it")
        return parsed
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and (mark is None or mark.index >= len(front.rstrip())):
            mark = exc.context_mark  # ran off the end: point at what was left open
        line = mark.line + 2 if mark else 1
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        fail(line, None, f"front matter is not valid YAML ({what}); fix the YAML")
        return parsed
    except yaml.YAMLError as exc:
        fail(1, None, f"front matter is not valid YAML ({exc}); fix the YAML")
        return parsed
    except RecursionError:  # hostile nesting (e.g. thousands of '[') must not take the loader down
        fail(1, None, "front matter is nested too deeply to read; flatten the YAML")
        return parsed
    finally:
        loader.dispose()
    if node is None or data is None:
        parsed.fields = fields
        return parsed
    if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
        fail(node.start_mark.line + 2, None,
             f"front matter is {_kind(data)}; it must be a mapping of keys like 'name: lead'")
        return parsed

    ok = True
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
        line = key_node.start_mark.line + 2
        if key in seen:
            fail(line, key, f"given twice (first on line {seen[key]}); keep one")
            ok = False
            continue
        seen[key] = line
        if key not in _KEYS:
            fail(line, key, "unknown key, ignored; known keys are " + ", ".join(KNOWN_KEYS),
                 "warning")
            continue
        attr, convert = _KEYS[key]
        value = data.get(key)
        if value is None and key != "name":
            continue  # "key:" with nothing after it means the default
        try:
            fields[attr] = convert(value, value_node)
        except _Invalid as exc:
            at = exc.node.start_mark.line + 2 if exc.node is not None else line
            fail(at, exc.key or key, exc.message)
            ok = False
        if key == "name":
            parsed.name_line = line
    mode = fields.get("permission_mode")
    if ok and mode is not None:
        runner = fields.get("runner", "script")
        allowed = PERMISSION_MODES[runner]
        if mode not in allowed:
            fail(seen["permission_mode"], "permission_mode",
                 f"{mode!r} is not a permission mode of runner {runner}; "
                 + (f"give one of {', '.join(allowed)}" if allowed else "remove the key (the scripted agent has none)"))
            ok = False
    if ok:
        parsed.fields = fields
    return parsed


def _scan(agents_dir: Path) -> list[tuple[Path, tuple[str, ...]]]:
    """Every AGENT.md below agents/ (hidden folders and agents' skills/ folders skipped)."""
    found: list[tuple[Path, tuple[str, ...]]] = []
    for dirpath, dirnames, filenames in os.walk(agents_dir):
        here = Path(dirpath)
        is_agent = AGENT_FILE in filenames
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not (is_agent and d == SKILLS_DIR)
        )
        if is_agent:
            found.append((here / AGENT_FILE, here.relative_to(agents_dir).parts))
    return sorted(found, key=lambda item: item[1])


def _skills(folder: Path, rel_folder: str) -> tuple[dict[str, str], list[Problem]]:
    skills: dict[str, str] = {}
    problems: list[Problem] = []
    root = folder / SKILLS_DIR
    if not root.is_dir():
        return skills, problems
    for sub in sorted(root.iterdir()):
        if sub.name.startswith(".") or not sub.is_dir():
            continue
        skill_file = sub / SKILL_FILE
        rel = f"{rel_folder}/{SKILLS_DIR}/{sub.name}/{SKILL_FILE}"
        if not skill_file.is_file():
            problems.append(Problem(f"{rel_folder}/{SKILLS_DIR}/{sub.name}", 1, None,
                                    f"skill folder has no {SKILL_FILE}; add one or remove the folder",
                                    "warning"))
            continue
        try:
            skills[sub.name] = skill_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(rel, 1, None, f"cannot read the skill ({exc}); skipped", "warning"))
    return skills, problems


def _def_fields(agent: AgentDef) -> dict[str, Any]:
    return {f.name: getattr(agent, f.name) for f in dataclasses.fields(agent)}


def _root_of(workspace) -> Path:
    """The workspace folder of a Workspace, or a path given as is."""
    if isinstance(workspace, (str, os.PathLike)):
        return Path(workspace)
    return Path(workspace.root)


def load_roster(workspace, previous: Roster | None = None) -> Roster:
    """Load ``agents/**/AGENT.md`` of ``workspace`` (a Workspace or the workspace folder).

    Never raises for a mistake in the roster: see ``Roster.problems``. With ``previous``
    (the roster loaded before), an agent whose file has turned bad keeps its last good
    definition and the problem says so.
    """
    ws_root = _root_of(workspace)
    agents_dir = ws_root / "agents"
    roster = Roster(root=agents_dir)
    if not agents_dir.is_dir():
        return roster
    prev_by_file = {a.file: a for a in previous.agents.values()} if previous else {}

    parsed_all: list[_Parsed] = []
    for path, folder in _scan(agents_dir):
        rel_file = path.relative_to(ws_root).as_posix()
        if not folder:
            roster.problems.append(Problem(rel_file, 1, None,
                                           "an AGENT.md directly in agents/ is not loaded; "
                                           "move it into a folder named for the agent, e.g. agents/lead/"))
            continue
        p = _parse_file(path, rel_file, folder)
        if p.fields is not None and "name" not in p.fields:
            folder_name = folder[-1]
            if NAME_RE.fullmatch(folder_name) and folder_name not in RESERVED_NAMES:
                p.fields["name"] = folder_name
            else:
                p.problems.append(Problem(rel_file, 1, "name",
                                          f"the folder name {folder_name!r} is not a valid agent name "
                                          "and no 'name:' is given; add 'name: <a-z0-9_->' or "
                                          "rename the folder"))
                p.fields = None
        if p.fields is not None:
            skills, skill_problems = _skills(path.parent, "/".join(("agents",) + folder))
            p.fields["skills"] = skills
            p.problems.extend(skill_problems)
        parsed_all.append(p)

    # Names must be unique: the first by path keeps it.
    owner: dict[str, _Parsed] = {}
    for p in parsed_all:
        if p.fields is None:
            continue
        name = p.fields["name"]
        if name in owner:
            p.problems.append(Problem(p.rel_file, p.name_line, "name",
                                      f"{name!r} is already the name of {owner[name].rel_file}; "
                                      "names must be unique, so this definition is not loaded"))
            p.fields = None
        else:
            owner[name] = p

    # A bad file keeps its last good definition on a reload.
    for p in parsed_all:
        if p.fields is None and p.file in prev_by_file:
            old = prev_by_file[p.file]
            if old.name in owner:
                continue
            keep = _def_fields(old)
            p.fields = {k: v for k, v in keep.items()
                        if k not in ("file", "rel_path", "tier", "parent", "children")}
            owner[old.name] = p
            p.problems = [dataclasses.replace(q, message=q.message + "; the last good definition "
                                              f"of {old.name!r} stays in use until this is fixed")
                          if q.severity == "error" else q for q in p.problems]

    # The tree: the parent is the agent of the nearest folder above that has an AGENT.md.
    by_folder = {p.folder: p for p in parsed_all}
    parents: dict[str, str | None] = {}
    for p in parsed_all:
        if p.fields is None:
            continue
        parent_name = None
        for depth in range(len(p.folder) - 1, 0, -1):
            above = by_folder.get(p.folder[:depth])
            if above is None:
                continue
            if above.fields is None:
                p.problems.append(Problem(p.rel_file, 1, None,
                                          f"its parent {above.rel_file} did not load (see its error); "
                                          "this agent loads without a parent and escalates to the "
                                          "operator until that file is fixed", "warning"))
            else:
                parent_name = above.fields["name"]
            break
        parents[p.fields["name"]] = parent_name

    children: dict[str, list[str]] = {n: [] for n in parents}
    for name, parent in parents.items():
        if parent is not None:
            children[parent].append(name)

    for p in parsed_all:
        roster.problems.extend(p.problems)
        if p.fields is None:
            continue
        name = p.fields["name"]
        roster.agents[name] = AgentDef(
            **p.fields,
            file=p.file,
            rel_path="/".join(p.folder),
            tier=len(p.folder) - 1,
            parent=parents[name],
            children=tuple(sorted(children[name])),
        )
    roster.problems.sort(key=lambda q: (q.file, q.line))
    return roster


# --------------------------------------------------------------------------- changes


def diff_rosters(old: Roster | None, new: Roster) -> RosterDiff:
    """Agents added, changed and removed. An agent whose only change is its list of
    children (a child came or went) is not "changed": nothing about it needs redoing."""
    before = old.agents if old else {}
    after = new.agents

    def differs(name: str) -> bool:
        return dataclasses.replace(after[name], children=()) != dataclasses.replace(before[name], children=())

    return RosterDiff(
        added=tuple(sorted(set(after) - set(before))),
        changed=tuple(sorted(n for n in set(after) & set(before) if differs(n))),
        removed=tuple(sorted(set(before) - set(after))),
    )


async def watch_roster(
    workspace,
    *,
    initial: Roster | None = None,
    stop_event: asyncio.Event | None = None,
    debounce_ms: int = 200,
    check_every_ms: int = 1000,
) -> AsyncIterator[RosterUpdate]:
    """Reload the roster whenever a file under ``agents/`` changes.

    Yields a :class:`RosterUpdate` for each reload that changed an agent or the list of
    problems. Ends when ``stop_event`` is set. ``initial`` is the roster to diff the
    first reload against (loaded here if not given). If ``agents/`` itself is removed
    or replaced (a checkout, a restore), its agents are reported removed and the watch
    carries on with the new folder once there is one (checked every ``check_every_ms``).
    """
    from watchfiles import awatch

    ws_root = _root_of(workspace)
    agents_dir = ws_root / "agents"
    current = initial if initial is not None else await asyncio.to_thread(load_roster, ws_root)

    def stopped() -> bool:
        return stop_event is not None and stop_event.is_set()

    def folder_id() -> tuple[int, int] | None:
        try:
            st = agents_dir.stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if agents_dir.is_dir() else None

    async def reload() -> RosterUpdate | None:
        nonlocal current
        new = await asyncio.to_thread(load_roster, ws_root, current)
        diff = diff_rosters(current, new)
        problems_changed = [str(p) for p in new.problems] != [str(p) for p in current.problems]
        current = new
        return RosterUpdate(roster=new, diff=diff) if diff or problems_changed else None

    while not stopped():
        watched = folder_id()
        if watched is None:  # no agents/ (yet): look again in a moment
            if stop_event is None:
                await asyncio.sleep(check_every_ms / 1000)
            else:
                try:
                    await asyncio.wait_for(stop_event.wait(), check_every_ms / 1000)
                except TimeoutError:
                    pass
            if folder_id() is not None and (update := await reload()) is not None:
                yield update
            continue
        # the folder may have appeared or been replaced since the last load
        if (update := await reload()) is not None:
            yield update
        first = True  # changes made before the watcher was set up are caught by one more reload
        async for changes in awatch(agents_dir, stop_event=stop_event, debounce=debounce_ms,
                                    step=50, recursive=True, rust_timeout=check_every_ms,
                                    yield_on_timeout=True):
            replaced = folder_id() != watched
            if changes or replaced or first:
                first = False
                if (update := await reload()) is not None:
                    yield update
            if replaced:
                break


def _agent_detail(agent: AgentDef) -> dict[str, Any]:
    return {"path": agent.rel_path, "tier": agent.tier, "parent": agent.parent,
            "file": f"agents/{agent.rel_path}/{AGENT_FILE}"}


async def record_roster_changes(store, roster: Roster, diff: RosterDiff, *, actor: str = "roster") -> None:
    """Put one reload into the store: registry rows and ``agent.added/changed/removed`` events.

    ``agent.added`` / ``agent.changed`` (detail: path, tier, parent, file) are appended
    here; ``agent.removed`` comes from ``store.remove_agent``. Parents are registered
    before their children; removed agents are removed last.
    """
    for name in sorted(diff.added + diff.changed, key=lambda n: roster.agents[n].tier):
        agent = roster.agents[name]
        await store.upsert_agent(name, path=agent.rel_path, tier=agent.tier, parent=agent.parent,
                                 description=agent.description, actor=actor)
        kind = "agent.added" if name in diff.added else "agent.changed"
        await store.append_event(actor, kind, name, _agent_detail(agent))
    for name in diff.removed:
        from qms.errors import NotFound

        try:
            await store.remove_agent(name, actor=actor)  # the store records agent.removed itself
        except NotFound:
            pass  # never registered, or removed by someone else meanwhile


async def sync_roster(store, roster: Roster, *, actor: str = "roster") -> RosterDiff:
    """Make the store's registry match ``roster`` (at start-up); returns what it changed.

    Agents whose registry row differs in path, tier, parent or description count as
    changed; registered agents that are no longer in the roster are removed.
    """
    registered = {a.name: a for a in await store.list_agents() if a.name not in RESERVED_NAMES}
    added, changed = [], []
    for name, agent in roster.agents.items():
        row = registered.get(name)
        if row is None:
            added.append(name)
        elif (row.path, row.tier, row.parent, row.description) != (
            agent.rel_path, agent.tier, agent.parent, agent.description
        ):
            changed.append(name)
    removed = sorted(set(registered) - set(roster.agents))
    diff = RosterDiff(tuple(sorted(added)), tuple(sorted(changed)), tuple(removed))
    if diff:
        await record_roster_changes(store, roster, diff, actor=actor)
    return diff


async def follow_roster(
    workspace,
    store,
    *,
    stop_event: asyncio.Event | None = None,
    on_update=None,
    actor: str = "roster",
    initial: Roster | None = None,
) -> None:
    """Keep the store's registry in step with ``agents/`` until ``stop_event`` is set.

    Syncs once at the start (unless ``initial`` is given: a roster already synced, as
    the host does before it opens the hub), then records every reload
    (``record_roster_changes``). ``on_update(update)`` (plain or async) is called after
    each reload is recorded, e.g. to log it or refresh a view.
    """
    roster = initial
    if roster is None:
        roster = await asyncio.to_thread(load_roster, _root_of(workspace))
        await sync_roster(store, roster, actor=actor)
    async for update in watch_roster(workspace, initial=roster, stop_event=stop_event):
        if update.diff:
            await record_roster_changes(store, update.roster, update.diff, actor=actor)
        if on_update is not None:
            result = on_update(update)
            if asyncio.iscoroutine(result):
                await result
