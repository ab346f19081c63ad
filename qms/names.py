"""Names of agents and actors, checked before anything touches the database.

An agent name is ``[a-z0-9][a-z0-9_-]{0,62}``. ``operator`` is the human principal
(tier 0, always exists, never in the registry table). ``*`` is valid only as a
broadcast target (:func:`validate_target`).
"""

from __future__ import annotations

import re

from qms.errors import InvalidInput

OPERATOR = "operator"
#: the actor of the chat side's own doings (routing, onboarding holds, scheduled tasks, its launcher)
DISPATCH = "dispatch"
BROADCAST = "*"

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(value: object, limit: int = 40) -> str:
    """A name as it may appear in an error line: control characters made visible, cut short."""
    text = value if isinstance(value, str) else repr(value)
    text = _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid agent/actor name, else raise InvalidInput."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid name '{shown(name)}': use 1-63 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_target(name: object) -> str:
    """A message target: an agent name, ``operator`` or ``*`` (broadcast)."""
    if name == BROADCAST:
        return BROADCAST
    return validate_name(name)


def validate_text(
    value: object, what: str, *, max_chars: int, allow_empty: bool = False, multiline: bool = False
) -> str:
    """A label (title, thread, note): no control characters, bounded length.

    ``multiline`` allows newlines and tabs (descriptions, comments); escape sequences
    and other control characters are refused either way.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, not {type(value).__name__}")
    if not value.strip() and not allow_empty:
        raise InvalidInput(f"{what} is empty; give a short {what}")
    pattern = _CONTROL_BUT_LINES_RE if multiline else _CONTROL_RE
    if pattern.search(value):
        raise InvalidInput(
            f"{what} '{shown(value)}' contains control characters or escape sequences; "
            + ("use plain text" if multiline else "use plain text on one line")
        )
    if len(value) > max_chars:
        raise InvalidInput(f"{what} is {len(value)} characters long; keep it under {max_chars + 1}")
    return value


def validate_path(path: object) -> str:
    """A roster path like ``lead/research``: relative, no ``..``, no control characters."""
    if not isinstance(path, str):
        raise InvalidInput(f"agent path must be text, not {type(path).__name__}")
    parts = path.split("/")
    if (
        not path
        or len(path) > 1024
        or _CONTROL_RE.search(path)
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise InvalidInput(
            f"invalid agent path '{shown(path)}': use folder names relative to agents/, "
            "separated by '/', without '..'"
        )
    return path
