"""The keys of AGENT.md's front matter: each key's checks and conversion into an
``AgentDef`` field. A value that is not allowed raises :class:`Invalid` with the YAML
node (for its line) and a message that says what to give instead."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from crowdtui.engine_config import ENGINE_NAME_RE, LABEL_RE
from crowdtui.grant_rules import GrantRuleError, parse_rule
from crowdtui.roster.model import (
    CAPABILITIES,
    LAUNCH_POLICIES,
    MODES,
    NETWORK_POLICIES,
    RESERVED_NAMES,
    RESTART_POLICIES,
    RUNNERS,
    SHUTDOWN_POLICIES,
    WORKSPACE_MODES,
    Mount,
    Resources,
)
from qms.names import NAME_RE


class Invalid(Exception):
    """A value that is not allowed; carries the node (for its line) and the message."""

    def __init__(self, node: yaml.Node | None, message: str, key: str | None = None):
        super().__init__(message)
        self.node = node
        self.message = message
        self.key = key


def kind_of(value: Any) -> str:
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
        raise Invalid(node, f"{kind_of(value)} is not allowed; give {what}")
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
        raise Invalid(node, f"{kind_of(value)} is not allowed; give a list of {what}")
    out = []
    for i, (item, item_node) in enumerate(zip(value, items)):
        if not isinstance(item, str) or not item.strip():
            raise Invalid(item_node, f"item {i + 1} is {kind_of(item)}; each item must be {what}")
        out.append(item.strip())
    return tuple(out)


def _choice(value: Any, node: yaml.Node, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value) if isinstance(value, str) else kind_of(value)
        raise Invalid(node, f"{shown} is not one of {', '.join(allowed)}")
    return value


def _name(value: Any, node: yaml.Node) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else kind_of(value)
        raise Invalid(
            node,
            f"{shown} is not a valid agent name; use 1-63 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit",
        )
    if value in RESERVED_NAMES:
        raise Invalid(node, f"{value!r} is reserved for the human operator; choose another name")
    return value


def _command(value: Any, node: yaml.Node) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise Invalid(node, f"cannot split {value!r} into words ({exc}); use a list") from None
        if not parts:
            raise Invalid(node, "empty command; give a list like [crowd-agent, --role, worker]")
        return tuple(parts)
    if isinstance(value, list) and value:
        out = []
        for i, (item, item_node) in enumerate(zip(value, node.value)):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise Invalid(item_node, f"item {i + 1} is {kind_of(item)}; each word must be text")
            out.append(str(item))
        return tuple(out)
    raise Invalid(node, f"{kind_of(value)} is not allowed; give a list like [crowd-agent, --role, worker]")


def _mount(value: Any, node: yaml.Node) -> Mount:
    hint = "give 'SOURCE:/TARGET[:ro|rw]' or {source: SOURCE, target: /TARGET, mode: ro|rw}"
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise Invalid(node, f"{value!r} is not a mount; {hint}")
        source, target, mode = parts[0], parts[1], parts[2] if len(parts) == 3 else "ro"
    elif isinstance(value, dict):
        extra = set(value) - {"source", "target", "mode"}
        if extra:
            raise Invalid(node, f"unknown mount key {sorted(extra)[0]!r}; {hint}")
        source, target, mode = value.get("source"), value.get("target"), value.get("mode", "ro")
        if not isinstance(source, str) or not isinstance(target, str) or not source or not target:
            raise Invalid(node, f"a mount needs source and target as text; {hint}")
    else:
        raise Invalid(node, f"{kind_of(value)} is not a mount; {hint}")
    if mode not in WORKSPACE_MODES:
        raise Invalid(node, f"mount mode {mode!r} is not one of ro, rw")
    if not target.startswith("/") or target.rstrip("/") in ("", "/run/crowd", "/workspace"):
        raise Invalid(
            node,
            f"mount target {target!r} must be an absolute path inside the container, "
            "other than /, /run/crowd and /workspace",
        )
    if ".." in Path(target).parts:
        raise Invalid(node, f"mount target {target!r} must not contain '..'")
    return Mount(source=source, target=target, mode=mode)


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env(value: Any, node: yaml.Node) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Invalid(node, f"{kind_of(value)} is not allowed; give a mapping NAME: value")
    out: dict[str, str] = {}
    for key_node, value_node in node.value:
        name = key_node.value
        val = value[name] if name in value else None
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise Invalid(key_node, f"{name!r} is not a variable name; use letters, digits and '_'",
                           key=f"env.{name}")
        if isinstance(val, bool):
            val = "true" if val else "false"
        if isinstance(val, (int, float)):
            val = str(val)
        if not isinstance(val, str):
            raise Invalid(value_node, f"{kind_of(val)} is not allowed; give text (quote it: '')",
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
            raise Invalid(item_node, f"{item!r} is not 'host:port' (the host may use *, e.g. '*.github.com:443')")
    return items


_MEMORY_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?", re.IGNORECASE)
_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _resources(value: Any, node: yaml.Node) -> Resources:
    if not isinstance(value, dict):
        raise Invalid(node, f"{kind_of(value)} is not allowed; give a mapping with cpus, memory, pids, disk")
    base = Resources()
    cpus, memory, pids, disk = base.cpus, base.memory, base.pids, base.disk
    for key_node, value_node in node.value:
        key, val = key_node.value, value.get(key_node.value)
        sub = f"resources.{key}"
        if key == "cpus":
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 < val <= 256:
                raise Invalid(value_node, f"{val!r} is not allowed; give a number of CPUs above 0, e.g. 0.5 or 2", key=sub)
            cpus = float(val)
        elif key == "memory":
            m = _MEMORY_RE.fullmatch(str(val)) if isinstance(val, (str, int)) and not isinstance(val, bool) else None
            if not m:
                raise Invalid(value_node, f"{val!r} is not a size; give e.g. 512m or 2g", key=sub)
            size = float(m.group(1)) * _UNIT[m.group(2).lower()]
            if size < 6 * 1024**2:
                raise Invalid(value_node, f"{val!r} is too small; the engine needs at least 6m", key=sub)
            size = int(size)
            memory = f"{size // 1024**2}m" if size % 1024**2 == 0 else f"{size}b"
        elif key == "disk":
            if isinstance(val, str) and val.strip().lower() == "none":
                disk = "none"
                continue
            m = _MEMORY_RE.fullmatch(str(val)) if isinstance(val, (str, int)) and not isinstance(val, bool) else None
            if not m:
                raise Invalid(value_node, f"{val!r} is not a size; give e.g. 1g or 200m, or none for no limit", key=sub)
            size = int(float(m.group(1)) * _UNIT[m.group(2).lower()])
            if not 32 * 1024**2 <= size <= 16 * 1024**4:
                raise Invalid(value_node, f"{val!r} is not allowed; give a size from 32m to 16384g, or none", key=sub)
            disk = f"{size // 1024**2}m" if size % 1024**2 == 0 else f"{size}b"
        elif key == "pids":
            if isinstance(val, bool) or not isinstance(val, int) or not 16 <= val <= 1_000_000:
                raise Invalid(value_node, f"{val!r} is not allowed; give a whole number of processes, at least 16", key=sub)
            pids = val
        else:
            raise Invalid(key_node, f"unknown key; resources has cpus, memory, pids, disk", key=sub)
    return Resources(cpus=cpus, memory=memory, pids=pids, disk=disk)


def _capabilities(value: Any, node: yaml.Node) -> tuple[str, ...]:
    items = _text_list(value, node, "a capability name like NET_BIND_SERVICE")
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item, item_node in zip(items, nodes):
        cap = item.upper().removeprefix("CAP_")
        if cap not in CAPABILITIES:
            raise Invalid(item_node, f"{item!r} is not a Linux capability (e.g. NET_BIND_SERVICE, CHOWN)")
        out.append(cap)
    return tuple(out)


def _secrets(value: Any, node: yaml.Node) -> tuple[str, ...]:
    items = _text_list(value, node, "a secret name")
    nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
    for item, item_node in zip(items, nodes):
        if not _ENV_NAME.fullmatch(item):
            raise Invalid(item_node, f"{item!r} is not a secret name; use letters, digits and '_'")
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
            raise Invalid(item_node, str(exc)) from None
    return items


_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/\S*)?")


def _base_url(value: Any, node: yaml.Node) -> str:
    text = _text(value, node, "a URL like https://gateway.example.com")
    if not _URL_RE.fullmatch(text.strip()):
        raise Invalid(node, f"{text!r} is not an http(s) URL; give e.g. https://gateway.example.com:8443")
    return text.strip().rstrip("/")


def _spawner(value: Any, node: yaml.Node) -> str:
    """Who spawned the agent (``spawn_agent`` writes it): an agent's name or the operator."""
    if value in RESERVED_NAMES:
        return value
    return _name(value, node)


def _engine(value: Any, node: yaml.Node) -> str:
    if not isinstance(value, str) or not ENGINE_NAME_RE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else kind_of(value)
        raise Invalid(node, f"{shown} is not an engine name; give local or a name from crowd.toml [engines.NAME]")
    return value


def _engine_labels(value: Any, node: yaml.Node) -> tuple[str, ...]:
    items = _text_list(value, node, "an engine label like gpu")
    for item in items:
        if not LABEL_RE.fullmatch(item):
            raise Invalid(node, f"{item!r} is not an engine label (letters, digits, '_', '.', '=', '-')")
    return items


def _bool(value: Any, node: yaml.Node) -> bool:
    if not isinstance(value, bool):
        raise Invalid(node, f"{kind_of(value)} is not allowed; give true or false")
    return value


# key in AGENT.md -> (AgentDef field, converter)
KEYS: dict[str, tuple[str, Any]] = {
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
    "mode": ("mode", lambda v, n: _choice(v, n, MODES)),
    "base_url": ("base_url", _base_url),
    "spawned_by": ("spawned_by", _spawner),
    "engine": ("engine", _engine),
    "engine_labels": ("engine_labels", _engine_labels),
}
KNOWN_KEYS = tuple(KEYS)
