"""Showing untrusted text (message bodies, titles, names, log lines) inert.

Nothing here interprets markup, and every control character becomes a visible
escape (ESC is shown as the four characters ``\\x1b``), so a hostile string can
never move the cursor, change colours or retitle the app's own screen.
"""

from __future__ import annotations

import time

from rich.text import Text

from crowdtui.text_safety import inert as _inert

_ESCAPES = {"\t": "    "}


def inert(text: object, *, multiline: bool = False) -> str:
    """``text`` with control characters replaced by visible ``\\xNN`` escapes.

    Newlines are kept when ``multiline`` is true, else shown as ``⏎``. Tabs become spaces.
    """
    return _inert(text, multiline=multiline).replace("\t", _ESCAPES["\t"])


def safe(text: object, style: str = "", *, multiline: bool = False) -> Text:
    """A rich ``Text`` of untrusted ``text``: never markup, never control characters."""
    return Text(inert(text, multiline=multiline), style=style, no_wrap=not multiline)


def first_line(text: object, width: int = 80) -> str:
    """The first line of ``text`` (inert), cut to ``width`` characters."""
    line = str(text).split("\n", 1)[0]
    line = inert(line)
    return line if len(line) <= width else line[: width - 1] + "…"


def clock(ts: float | str | None) -> str:
    """Local wall-clock ``HH:MM:SS`` for an epoch time (or an ISO string, shown as is)."""
    if ts is None:
        return ""
    if isinstance(ts, str):
        try:
            ts = float(ts)
        except ValueError:
            return inert(ts)[-8:]
    return time.strftime("%H:%M:%S", time.localtime(ts))


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit in ("B", "K") else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}G"


def percent(p: float | None) -> str:
    return "–" if p is None else f"{p:.0f}%"
