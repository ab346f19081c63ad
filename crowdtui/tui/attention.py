"""Noticing, from an agent's terminal output alone, that it waits for the operator:
a bell (BEL outside an OSC string), or a prompt left idle (output that stopped without
a newline, quiet for a while). Plain Python; the app feeds it bytes and asks it the time.
"""

from __future__ import annotations

import re

_ESC_SEQ = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")


class AttentionWatch:
    """Feed it output with ``feed``; ask ``reason(now)`` whether the agent waits for you."""

    def __init__(self, idle_after: float = 20.0, now: float = 0.0) -> None:
        self.idle_after = idle_after
        self.rang = False  # a bell since the operator last looked
        self.last_output = now
        self.tail = b""  # the bytes after the last newline (the line being written)
        self._in_osc = False
        self._esc = False

    def feed(self, data: bytes, now: float) -> bool:
        """Returns True when this chunk rang the bell."""
        if not data:
            return False
        self.last_output = now
        rang = self._scan_bell(data)
        if rang:
            self.rang = True
        nl = data.rfind(b"\n")
        self.tail = (data[nl + 1:] if nl >= 0 else self.tail + data)[-512:]
        return rang

    def prime(self, backlog: bytes, now: float) -> None:
        """What the terminal showed before we watched: its last line, but no old bells."""
        if backlog:
            nl = backlog.rfind(b"\n")
            self.tail = backlog[nl + 1:][-512:]
            self.last_output = now

    def _scan_bell(self, data: bytes) -> bool:
        if b"\x07" not in data and not self._in_osc:
            self._track(data)
            return False
        rang = False
        for b in data:
            if self._in_osc:
                if b == 0x07 or (self._esc and b == 0x5C):
                    self._in_osc = False
                self._esc = b == 0x1B
                continue
            if self._esc and b == 0x5D:  # ESC ]
                self._in_osc = True
                self._esc = False
                continue
            if b == 0x07:
                rang = True
            self._esc = b == 0x1B
        return rang

    def _track(self, data: bytes) -> None:
        """Keep the OSC state right across chunks that hold no BEL."""
        i = data.rfind(b"\x1b]")
        if i >= 0 and b"\x1b\\" not in data[i:]:
            self._in_osc = True
        self._esc = data.endswith(b"\x1b")

    def seen(self) -> None:
        """The operator looked at the terminal: a bell is answered."""
        self.rang = False

    def idle_prompt(self, now: float) -> bool:
        visible = _ESC_SEQ.sub(b"", self.tail).replace(b"\r", b"").strip()
        return bool(visible) and now - self.last_output >= self.idle_after

    def due(self) -> float | None:
        """When ``reason`` may next turn to "prompt waiting" without more output (None:
        it cannot: a bell is already pending, or the last line shows nothing)."""
        if self.rang or not _ESC_SEQ.sub(b"", self.tail).replace(b"\r", b"").strip():
            return None
        return self.last_output + self.idle_after

    def reason(self, now: float) -> str | None:
        if self.rang:
            return "rang the bell"
        if self.idle_prompt(now):
            return "prompt waiting"
        return None
