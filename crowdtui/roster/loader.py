"""Loading the roster: every ``agents/**/AGENT.md`` and its skills, unique names, the
tree (parent = nearest agent folder above), and a bad file keeping its last good
definition on a reload."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from crowdtui.engine_config import engine_names
from crowdtui.roster.agent_file import ParsedFile, parse_agent_file
from crowdtui.roster.model import AGENT_FILE, RESERVED_NAMES, SKILL_FILE, SKILLS_DIR, AgentDef, Problem, Roster
from qms.names import NAME_RE


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


def roster_fingerprint(workspace) -> tuple:
    """What :func:`load_roster` reads, as (path, mtime, size) of every file below ``agents/``
    (hidden ones skipped; a folder added, moved or removed shows as its files' paths):
    equal fingerprints, equal rosters. A few stats, so a reader that polls can skip the
    YAML when nothing changed."""
    agents_dir = workspace_root(workspace) / "agents"
    seen: list[tuple[str, int, int]] = []
    for dirpath, dirnames, filenames in os.walk(agents_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            seen.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
    return tuple(seen)


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


def workspace_root(workspace) -> Path:
    """The workspace folder of a Workspace, or a path given as is."""
    if isinstance(workspace, (str, os.PathLike)):
        return Path(workspace)
    return Path(workspace.root)


def _engine_names(workspace, ws_root: Path) -> tuple[str, ...]:
    """The engines an ``engine:`` key may name: the workspace's configuration (crowd.toml)."""
    config = getattr(workspace, "config", None)
    if config is None:
        try:
            config = tomllib.loads((ws_root / "crowd.toml").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
    return engine_names(config)


def load_roster(workspace, previous: Roster | None = None) -> Roster:
    """Load ``agents/**/AGENT.md`` of ``workspace`` (a Workspace or the workspace folder).

    Never raises for a mistake in the roster: see ``Roster.problems``. With ``previous``
    (the roster loaded before), an agent whose file has turned bad keeps its last good
    definition and the problem says so.
    """
    ws_root = workspace_root(workspace)
    agents_dir = ws_root / "agents"
    roster = Roster(root=agents_dir)
    if not agents_dir.is_dir():
        return roster
    engines = _engine_names(workspace, ws_root)
    prev_by_file = {a.file: a for a in previous.agents.values()} if previous else {}

    parsed_all: list[ParsedFile] = []
    for path, folder in _scan(agents_dir):
        rel_file = path.relative_to(ws_root).as_posix()
        if not folder:
            roster.problems.append(Problem(rel_file, 1, None,
                                           "an AGENT.md directly in agents/ is not loaded; "
                                           "move it into a folder named for the agent, e.g. agents/lead/"))
            continue
        p = parse_agent_file(path, rel_file, folder)
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
        if p.fields is not None and p.fields.get("engine") not in (None, *engines):
            p.problems.append(Problem(rel_file, p.key_lines.get("engine", 1), "engine",
                                      f"no engine {p.fields['engine']!r}; the engines are "
                                      f"{', '.join(engines)} (add one with `crowdtui engine add`, "
                                      "or [engines.NAME] in crowd.toml)"))
            p.fields = None
        if p.fields is not None:
            skills, skill_problems = _skills(path.parent, "/".join(("agents",) + folder))
            p.fields["skills"] = skills
            p.problems.extend(skill_problems)
        parsed_all.append(p)

    # Names must be unique: the first by path keeps it.
    owner: dict[str, ParsedFile] = {}
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
