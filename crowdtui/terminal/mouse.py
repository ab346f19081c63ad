"""Mouse events to the report encoding the program asked for (xterm protocols)."""

from __future__ import annotations

from typing import Optional

LEFT, MIDDLE, RIGHT = 1, 2, 3  # Textual's button numbers


def encode_mouse(
    kind: str,
    x: int,
    y: int,
    *,
    button: int = LEFT,
    shift: bool = False,
    alt: bool = False,
    ctrl: bool = False,
    tracking: str,
    encoding: str,
) -> Optional[bytes]:
    """Report for one event, or None if the program did not ask for it.

    kind: "press", "release", "motion" (button held if button != 0), "wheel_up",
    "wheel_down". x, y are 0-based cells. tracking/encoding come from the emulator
    ("x10" | "normal" | "button" | "any", and "x10" | "utf8" | "sgr" | "urxvt").
    """
    if not tracking:
        return None
    if kind in ("wheel_up", "wheel_down"):
        if tracking == "x10":
            return None
        code = 64 if kind == "wheel_up" else 65
    else:
        base = {LEFT: 0, MIDDLE: 1, RIGHT: 2}.get(button, 3)
        if kind == "press":
            if base == 3:
                return None
            code = base
        elif kind == "release":
            if tracking == "x10":
                return None
            code = base if encoding == "sgr" else 3
        elif kind == "motion":
            if tracking == "any" or (tracking == "button" and base != 3):
                code = 32 + base
            else:
                return None
        else:
            return None
    if tracking != "x10":
        code += 4 * shift + 8 * alt + 16 * ctrl
    col, row = x + 1, y + 1
    if encoding == "sgr":
        final = "m" if kind == "release" else "M"
        return f"\x1b[<{code};{col};{row}{final}".encode()
    if encoding == "urxvt":
        return f"\x1b[{32 + code};{col};{row}M".encode()
    if encoding == "utf8":
        if col > 2015 or row > 2015:
            return None
        return ("\x1b[M" + chr(32 + code) + chr(32 + col) + chr(32 + row)).encode()
    if col > 223 or row > 223:
        return None  # not representable in the legacy encoding
    return b"\x1b[M" + bytes([32 + code, 32 + col, 32 + row])
