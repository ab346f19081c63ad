"""Agent output as lines, and its archive: what the runtime keeps of a container before
removing it (``archive_logs``), and the plain-text form of terminal output (``plain``).

Below both :mod:`crowdtui.runtime.containers` (which archives a container's output before
removing it) and :mod:`crowdtui.runtime.logs` (which reads and follows live logs).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

# CSI ... final byte, OSC ... BEL/ST, other two-byte ESC sequences, then stray controls.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[P^_][^\x1b]*\x1b\\"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b[ -/]+[0-~]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain(text: str) -> str:
    """Terminal output as plain text: escape sequences and control characters removed.

    A carriage return inside a line (progress bars) keeps only what was written last.
    """
    text = _ESCAPES.sub("", text.rstrip("\r\n"))
    if "\r" in text:
        text = text.rsplit("\r", 1)[-1] or text.replace("\r", "")
    return _CONTROLS.sub("", text)


@dataclass(frozen=True)
class LogLine:
    agent: str
    text: str  # plain text, no newline
    at: str = ""  # the engine's RFC 3339 timestamp ("" if unknown)

    def format(self, width: int) -> str:
        """``name │ text`` with the name padded to ``width`` (for merged views)."""
        return f"{self.agent:<{width}} | {self.text}"


def _split_timestamp(raw: str) -> tuple[str, str]:
    stamp, sep, rest = raw.partition(" ")
    if sep and len(stamp) >= 20 and stamp[4] == "-" and stamp.endswith("Z"):
        return stamp, rest
    return "", raw


def lines_of(agent: str, data: bytes) -> list[LogLine]:
    out = []
    for raw in data.decode("utf-8", errors="replace").split("\n"):
        if not raw:
            continue
        at, text = _split_timestamp(raw)
        out.append(LogLine(agent, plain(text), at))
    return out


ARCHIVES_KEPT = 10  # per agent
ARCHIVE_LINES = 20_000  # the last lines of a container that are kept


def archive_logs(folder: Path, container) -> Path | None:
    """Write a container's output (plain text, with timestamps) to ``folder`` before it goes.

    Files are named ``<UTC time>-<container id>.log``; only the newest
    ``ARCHIVES_KEPT`` are kept. Returns the file, or None when there was no output.
    """
    data = container.logs(stdout=True, stderr=True, timestamps=True, tail=ARCHIVE_LINES)
    if not data:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    agent = folder.name
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"{stamp}-{container.id[:12]}.log"
    with open(path, "w", encoding="utf-8") as fh:
        for line in lines_of(agent, data):
            fh.write(f"{line.at} {line.text}\n" if line.at else f"{line.text}\n")
    for old in sorted(folder.glob("*.log"))[:-ARCHIVES_KEPT]:
        old.unlink(missing_ok=True)
    return path


def archived_logs(folder: Path) -> list[Path]:
    """The archived output files of an agent, oldest first."""
    return sorted(folder.glob("*.log")) if folder.is_dir() else []
