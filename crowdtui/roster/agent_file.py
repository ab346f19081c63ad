"""Reading one AGENT.md: its front matter (YAML) and body (the persona), with every
mistake located by line and key as a :class:`Problem`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crowdtui.roster.fields import KEYS, KNOWN_KEYS, Invalid, kind_of
from crowdtui.roster.model import ACP_RUNNERS, MAX_FILE_BYTES, PERMISSION_MODES, Problem


@dataclass
class ParsedFile:
    """One AGENT.md after parsing: the fields it sets, or why it could not be used."""

    file: Path
    rel_file: str
    folder: tuple[str, ...]  # path parts of its folder below agents/
    fields: dict[str, Any] | None  # None: the definition has errors
    name_line: int = 1
    key_lines: dict[str, int] = field(default_factory=dict)  # key -> its line (for later checks)
    problems: list[Problem] = field(default_factory=list)


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter or None, body, line of the closing ---). Raises ValueError if unterminated."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n") in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1 :]), i + 1
    raise ValueError("the front matter opened by '---' on line 1 is never closed; add a line '---' after it")


def parse_agent_file(path: Path, rel_file: str, folder: tuple[str, ...]) -> ParsedFile:
    parsed = ParsedFile(file=path, rel_file=rel_file, folder=folder, fields=None)

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
        front, body, _ = split_front_matter(text)
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
             f"front matter is {kind_of(data)}; it must be a mapping of keys like 'name: lead'")
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
        parsed.key_lines[key] = line
        if key not in KEYS:
            fail(line, key, "unknown key, ignored; known keys are " + ", ".join(KNOWN_KEYS),
                 "warning")
            continue
        attr, convert = KEYS[key]
        value = data.get(key)
        if value is None and key != "name":
            continue  # "key:" with nothing after it means the default
        try:
            fields[attr] = convert(value, value_node)
        except Invalid as exc:
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
    if ok and fields.get("mode") == "acp" and fields.get("runner", "script") not in ACP_RUNNERS:
        fail(seen["mode"], "mode", f"runner {fields.get('runner', 'script')} has no Agent Client Protocol adapter; "
             f"mode: acp needs runner {' or '.join(ACP_RUNNERS)}")
        ok = False
    if ok:
        parsed.fields = fields
    return parsed
