"""The grant rule language: ``[!]tool[(param=glob,...)]``, parsed and matched.

Pure data, no hub: the roster checks a definition's rules with :func:`parse_rule` when it
loads them (so a bad rule is reported with its line), and the hub
(:mod:`crowdtui.hub.grants`) decides calls with the same :class:`Rule`.

A parameter named in a rule matches the tool's validated argument written in one canonical
way (:func:`canonical`): ``None`` is the empty string, booleans are ``true``/``false``,
numbers are plain decimals (``1.0`` is ``1``), document ids and types are upper case. The
glob is read the same way for that value (``False``, ``no`` or ``0`` for a boolean, ``01``
for a number, ``sop-*`` for a document id). Over a list, an allow rule matches when every
element matches and a deny rule when any element does; an empty list is matched like an
absent value.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

_RULE = re.compile(
    r"""^\s*(?P<neg>!)?\s*(?P<tool>[A-Za-z0-9_*?\[\]-]+)\s*(?:\((?P<params>.*)\))?\s*$"""
)
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GrantRuleError(ValueError):
    """A grant rule that cannot be parsed."""


@dataclass(frozen=True)
class Rule:
    allow: bool
    tool: str
    params: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def matches_name(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.tool)

    def matches(self, tool: str, args: Mapping[str, Any]) -> bool:
        if not self.matches_name(tool):
            return False
        # deny rules fire on any element of a list, allow rules need every element
        return all(_value_matches(args.get(name), glob, name, any_element=not self.allow)
                   for name, glob in self.params)


# Parameters the store reads case-insensitively (``sop-001`` is ``SOP-001``).
CASE_INSENSITIVE_PARAMS = frozenset({"doc_id", "doc_type"})
# Boolean words as pydantic reads them (its lax mode), so a rule may say False, no or 0.
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0"})


def canonical(value: Any, name: str = "") -> str:
    """One (non-list) argument value as the text a rule's glob is matched against."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value.upper() if name in CASE_INSENSITIVE_PARAMS else value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _number_text(text: str) -> str | None:
    """``01``, ``+1``, ``1.0`` -> ``1``; ``0.50`` -> ``0.5``; None when not a number."""
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        return canonical(float(text))
    except ValueError:
        return None


def _glob_for(value: Any, glob: str, name: str) -> str:
    """The rule's glob written the way :func:`canonical` writes ``value``."""
    if isinstance(value, bool):
        word = glob.strip().lower()
        return "true" if word in _TRUE_WORDS else "false" if word in _FALSE_WORDS else word
    if isinstance(value, (int, float)):
        return _number_text(glob.strip()) or glob
    if isinstance(value, str) and name in CASE_INSENSITIVE_PARAMS:
        return glob.upper()
    return glob


def _value_matches(value: Any, glob: str, name: str = "", any_element: bool = False) -> bool:
    if isinstance(value, (list, tuple)):
        if not value:
            return fnmatch.fnmatchcase("", glob)
        test = any if any_element else all
        return test(_value_matches(v, glob, name) for v in value)
    return fnmatch.fnmatchcase(canonical(value, name), _glob_for(value, glob, name))


def parse_rule(text: str) -> Rule:
    m = _RULE.match(text or "")
    if not m:
        raise GrantRuleError(
            f"grant rule {text!r} is not [!]tool[(param=glob,...)]; e.g. '!observe' or "
            "'send_message(to=lead)'"
        )
    params: list[tuple[str, str]] = []
    if m.group("params") is not None:
        body = m.group("params").strip()
        if not body:
            raise GrantRuleError(f"grant rule {text!r} has empty parentheses; name a parameter or drop them")
        for part in body.split(","):
            name, sep, glob = part.partition("=")
            name, glob = name.strip(), glob.strip()
            if not sep or not _PARAM_NAME.match(name):
                raise GrantRuleError(f"grant rule {text!r}: {part.strip()!r} is not param=glob")
            params.append((name, glob))
    return Rule(allow=not m.group("neg"), tool=m.group("tool"), params=tuple(params), text=text.strip())


def parse_rules(texts: Iterable[str]) -> tuple[Rule, ...]:
    return tuple(parse_rule(t) for t in texts)
