"""Making untrusted text (message bodies, names, titles, error messages) safe to show.

Headless (standard library only): the CLI, dispatch's local channel and the TUI all
use this one definition, so what is inert is the same everywhere.
"""

from __future__ import annotations

import re

# C0 controls but newline and tab, DEL, C1 controls; zero-width characters and bidi
# embeddings, overrides and isolates (they hide or reorder text).
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    ch = match.group()
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: object, *, multiline: bool = True) -> str:
    """``text`` with every control character shown as a visible escape (ESC becomes the
    four characters ``\\x1b``, U+202E becomes ``\\u202e``); tabs are kept.

    Newlines are kept when ``multiline`` is true, else shown as ``⏎``.
    """
    def escape(match: re.Match) -> str:
        if match.group() == "\n":
            return "\n" if multiline else "⏎"
        return _escape(match)

    return _UNSAFE.sub(escape, str(text))
