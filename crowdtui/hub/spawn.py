"""What ``spawn_agent`` writes: a child's AGENT.md composed from a template and an inline
definition, checked with the roster's own parser, and held to at most its parent's grants
and resources.

Templates are operator-written files ``agents/.templates/<name>.md`` (the roster loader
skips hidden folders, so a template is never an agent itself). The inline definition is a
mapping of AGENT.md keys; it overrides the template's. ``spawned_by`` is always written.

A parent that is an agent (the operator is not limited) may give its child only what it has
itself: network no wider (``none`` < ``allowlist`` < ``open``), egress entries, secrets,
mounts and capabilities among its own, ``/workspace`` rw only if its own is, its own image,
runner (or the scripted agent) and gateway, resources no larger (left out: the smaller of
the default and its own), launch ``manual`` or ``on_task``, and grant rules that narrow its
own: with no rules of its own, any rules (they narrow the child's tier default, itself no
wider than the parent's); with rules, the child gets the parent's rules followed by only
deny rules (``!tool(...)``), since the last matching rule decides.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import yaml

from crowdtui.roster.agent_file import parse_agent_file, split_front_matter
from crowdtui.roster.model import AGENT_FILE, AgentDef, Resources
from crowdtui.text_safety import inert

TEMPLATES_DIR = ".templates"
MAX_DEFINITION = 16 * 1024  # bytes of the inline definition as JSON
MAX_PERSONA = 64 * 1024  # bytes of the persona
_TEMPLATE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
NETWORK_ORDER = {"none": 0, "allowlist": 1, "open": 2}
AGENT_LAUNCH = ("manual", "on_task")  # launch policies an agent may give a child
_SIZE = re.compile(r"([0-9]+)([bmg]?)")
_UNIT = {"": 1, "b": 1, "m": 1024**2, "g": 1024**3}


class SpawnRefused(ValueError):
    """The definition cannot be spawned; the message says what to change."""


def template_file(agents_dir: Path, template: str) -> Path:
    if not _TEMPLATE.fullmatch(template or ""):
        raise SpawnRefused(f"template {template!r} is not a template name (a-z, 0-9, '_', '-')")
    path = agents_dir / TEMPLATES_DIR / f"{template}.md"
    if not path.is_file():
        have = sorted(p.stem for p in (agents_dir / TEMPLATES_DIR).glob("*.md")) if (agents_dir / TEMPLATES_DIR).is_dir() else []
        raise SpawnRefused(f"no template {template!r} (agents/{TEMPLATES_DIR}/{template}.md); "
                           f"templates: {', '.join(have) or 'none'}; or give the definition inline")
    return path


def compose(name: str, spawner: str, *, template_path: Path | None, definition: dict[str, Any] | None,
            persona: str | None, description: str | None) -> str:
    """The AGENT.md text: the template's keys, then the inline ones, then name and spawned_by."""
    keys: dict[str, Any] = {}
    body = ""
    if template_path is not None:
        try:
            front, body, _ = split_front_matter(template_path.read_text(encoding="utf-8"))
            loaded = yaml.safe_load(front) if front else None
        except (ValueError, OSError, yaml.YAMLError) as exc:
            raise SpawnRefused(f"template {template_path.name} cannot be read ({' '.join(str(exc).split())[:200]}); "
                               "tell the operator") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpawnRefused(f"template {template_path.name} has no mapping of keys; tell the operator")
        keys.update(loaded or {})
    definition = dict(definition or {})
    if len(json.dumps(definition, default=str)) > MAX_DEFINITION:
        raise SpawnRefused(f"the definition is over {MAX_DEFINITION // 1024} KiB; keep it short")
    for key in ("name", "spawned_by"):
        if key in definition and definition[key] != (name if key == "name" else spawner):
            raise SpawnRefused(f"the definition may not set {key!r}; the name is the `name` argument "
                               "and spawned_by is written by the hub")
        definition.pop(key, None)
    if "persona" in definition:
        raise SpawnRefused("the persona is the `persona` argument, not a key of the definition")
    keys.update(definition)
    if description is not None:
        keys["description"] = inert(description, multiline=False)
    keys["name"] = name
    keys["spawned_by"] = spawner
    if persona is not None:
        body = persona
    if len(body.encode()) > MAX_PERSONA:
        raise SpawnRefused(f"the persona is over {MAX_PERSONA // 1024} KiB; move long material into documents")
    body = inert(body).strip()
    front = yaml.safe_dump(keys, sort_keys=False, allow_unicode=False, default_flow_style=None)
    return f"---\n{front}---\n{body}\n"


def parse(text: str, scratch: Path, rel_folder: tuple[str, ...]) -> dict[str, Any]:
    """The definition's fields, parsed by the roster's own parser from a scratch file; any
    problem (an error, or a warning such as an unknown key) refuses the spawn."""
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / AGENT_FILE
    path.write_text(text, encoding="utf-8")
    rel_file = "agents/" + "/".join(rel_folder) + "/" + AGENT_FILE
    parsed = parse_agent_file(path, rel_file, rel_folder)
    if parsed.problems:
        raise SpawnRefused("; ".join(str(p) for p in parsed.problems[:5]))
    assert parsed.fields is not None
    return parsed.fields


def _bytes(size: str) -> float:
    """A size as the roster writes it (``512m``, ``123b``); ``none`` is unlimited."""
    if size == "none":
        return float("inf")
    m = _SIZE.fullmatch(size)
    if not m:
        return float("inf")
    return int(m.group(1)) * _UNIT[m.group(2)]


def _fits_resources(given: dict[str, Any], parent: Resources) -> dict[str, Any]:
    """The child's resources, each no larger than the parent's (left out: the smaller of the
    default and the parent's). Raises SpawnRefused naming the first too large."""
    default = Resources()
    out: dict[str, Any] = {}
    for key, limit in (("cpus", parent.cpus), ("pids", parent.pids)):
        if key in given:
            if given[key] > limit:
                raise SpawnRefused(f"resources.{key} {given[key]} is more than your own {limit}; give at most {limit}")
            out[key] = given[key]
        else:
            out[key] = min(getattr(default, key), limit)
    for key in ("memory", "disk"):
        mine = getattr(parent, key)
        if key in given:
            if _bytes(given[key]) > _bytes(mine):
                raise SpawnRefused(f"resources.{key} {given[key]} is more than your own {mine}; give at most {mine}")
            out[key] = given[key]
        else:
            out[key] = min(getattr(default, key), mine, key=_bytes)
    return out


def _grants(child: tuple[str, ...], parent: tuple[str, ...]) -> tuple[str, ...]:
    if not parent:
        return child
    wider = [r for r in child if not r.lstrip().startswith("!")]
    if wider:
        raise SpawnRefused(f"grant rule {wider[0]!r} could widen your own grants; you have grant rules, so a "
                           "child gets yours and may only add deny rules ('!tool' or '!tool(param=glob)')")
    return tuple(parent) + tuple(child)


def within_parent(fields: dict[str, Any], raw_resources: Any, parent: AgentDef) -> dict[str, Any]:
    """Refuse what ``parent`` (an agent) may not give; return the AGENT.md keys to rewrite
    (resources spelled out, grants merged). ``raw_resources``: the ``resources`` mapping as
    written (the parsed value has defaults filled in for the keys it left out)."""
    network = fields.get("network", "none")
    if NETWORK_ORDER[network] > NETWORK_ORDER[parent.network]:
        raise SpawnRefused(f"network {network!r} is wider than your own {parent.network!r}")
    if network == "allowlist" and parent.network != "open":
        extra = [e for e in fields.get("egress", ()) if e not in parent.egress]
        if extra:
            raise SpawnRefused(f"egress {extra[0]!r} is not in your own egress list; give entries you have")
    checks = (
        ("secrets", fields.get("secrets", ()), parent.secrets),
        ("capabilities", fields.get("capabilities", ()), parent.capabilities),
        ("mounts", fields.get("mounts", ()), parent.mounts),
    )
    for key, given, own in checks:
        extra = [v for v in given if v not in own]
        if extra:
            shown = dataclasses.astuple(extra[0]) if dataclasses.is_dataclass(extra[0]) else extra[0]
            raise SpawnRefused(f"{key}: {shown!r} is not one of your own; a child gets at most what you have")
    if fields.get("workspace_mode", "ro") == "rw" and parent.workspace_mode != "rw":
        raise SpawnRefused("workspace: rw is more than your own read-only /workspace")
    for key in ("image", "base_url"):
        if fields.get(key) is not None and fields.get(key) != getattr(parent, key):
            raise SpawnRefused(f"{key} {fields[key]!r} is not your own; leave it out or give yours")
    runner = fields.get("runner", "script")
    if runner not in ("script", parent.runner):
        raise SpawnRefused(f"runner {runner!r} is neither yours ({parent.runner}) nor script")
    launch = fields.get("launch", "manual")
    if launch not in AGENT_LAUNCH:
        raise SpawnRefused(f"launch {launch!r} is not allowed for a spawned agent; use {' or '.join(AGENT_LAUNCH)} "
                           "(start it with start_agent)")
    given = fields.get("resources")
    named = raw_resources if isinstance(raw_resources, dict) else {}
    given_keys = {k: getattr(given, k) for k in ("cpus", "memory", "pids", "disk") if k in named and given is not None}
    return {"resources": _fits_resources(given_keys, parent.resources),
            "grants": list(_grants(tuple(fields.get("grants", ())), tuple(parent.grants)))}


def front_keys(text: str) -> dict[str, Any]:
    front, _, _ = split_front_matter(text)
    return yaml.safe_load(front) or {}


def rewrite(text: str, updates: dict[str, Any]) -> str:
    """``text`` (an AGENT.md made by :func:`compose`) with front-matter keys replaced."""
    front, body, _ = split_front_matter(text)
    keys = yaml.safe_load(front) or {}
    for key, value in updates.items():
        if value in ([], None):
            keys.pop(key, None)
        else:
            keys[key] = value
    keys["spawned_by"] = keys.pop("spawned_by")  # keep it last, where the operator looks
    dumped = yaml.safe_dump(keys, sort_keys=False, allow_unicode=False, default_flow_style=None)
    return f"---\n{dumped}---\n{body}"
