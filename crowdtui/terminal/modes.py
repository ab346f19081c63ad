"""Private modes as pyte stores them, and what the widget asks about them (a mixin for
``TerminalScreen``): application cursor keys, bracketed paste, mouse tracking and encoding."""

from __future__ import annotations

# Private modes as pyte stores them (shifted left by 5).
DECCKM = 1 << 5
DECCOLM = 3 << 5
ALT_47 = 47 << 5
ALT_1047 = 1047 << 5
ALT_1049 = 1049 << 5
MOUSE_X10 = 9 << 5
MOUSE_NORMAL = 1000 << 5
MOUSE_BUTTON = 1002 << 5
MOUSE_ANY = 1003 << 5
MOUSE_UTF8 = 1005 << 5
MOUSE_SGR = 1006 << 5
MOUSE_URXVT = 1015 << 5
BRACKETED_PASTE = 2004 << 5
FOCUS_EVENTS = 1004 << 5

CURSOR_SHAPES = {0: "block", 1: "block", 2: "block", 3: "underline", 4: "underline", 5: "bar", 6: "bar"}


class ModeQueries:
    """Read-only views of the screen's modes (``self.mode``: pyte's set of modes)."""

    mode: set

    @property
    def application_cursor(self) -> bool:
        return DECCKM in self.mode

    @property
    def bracketed_paste(self) -> bool:
        return BRACKETED_PASTE in self.mode

    @property
    def mouse_tracking(self) -> str:
        """"" (off), "x10", "normal" (press/release), "button" (+drag) or "any" (+motion)."""
        mode = self.mode
        if MOUSE_ANY in mode:
            return "any"
        if MOUSE_BUTTON in mode:
            return "button"
        if MOUSE_NORMAL in mode:
            return "normal"
        if MOUSE_X10 in mode:
            return "x10"
        return ""

    @property
    def mouse_encoding(self) -> str:
        """"sgr" (1006), "urxvt" (1015), "utf8" (1005) or "x10" (default)."""
        mode = self.mode
        if MOUSE_SGR in mode:
            return "sgr"
        if MOUSE_URXVT in mode:
            return "urxvt"
        if MOUSE_UTF8 in mode:
            return "utf8"
        return "x10"
