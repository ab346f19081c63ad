"""Key names (Textual's spelling: "ctrl+a", "shift+up", "alt+x", "f5") to the bytes
an xterm-compatible terminal sends. Headless: no Textual import."""

from __future__ import annotations

from typing import Optional

_CSI = "\x1b["
_SS3 = "\x1bO"

# name -> (final byte, uses SS3 in application cursor mode)
_CURSOR_KEYS = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
# name -> number in CSI n ~
_TILDE_KEYS = {
    "insert": 2, "delete": 3, "pageup": 5, "pagedown": 6,
    "f5": 15, "f6": 17, "f7": 18, "f8": 19, "f9": 20, "f10": 21, "f11": 23, "f12": 24,
}
_SS3_FKEYS = {"f1": "P", "f2": "Q", "f3": "R", "f4": "S"}

_CTRL_SYMBOLS = {
    "at": "\x00", "space": "\x00", "left_square_bracket": "\x1b", "backslash": "\x1c",
    "right_square_bracket": "\x1d", "circumflex_accent": "\x1e", "underscore": "\x1f",
    "question_mark": "\x7f", "minus": "\x1f", "slash": "\x1f",
    "2": "\x00", "3": "\x1b", "4": "\x1c", "5": "\x1d", "6": "\x1e", "7": "\x1f", "8": "\x7f",
}

_PLAIN = {"enter": "\r", "tab": "\t", "backspace": "\x7f", "escape": "\x1b", "space": " "}


def _split(key: str) -> tuple[set[str], str]:
    parts = key.split("+")
    # "plus" is spelled out by Textual, so a trailing "+" only appears as a name.
    return set(parts[:-1]), parts[-1]


def encode_key(
    key: str,
    character: Optional[str] = None,
    *,
    application_cursor: bool = False,
) -> Optional[bytes]:
    """Bytes for one key press, or None when the key has no terminal encoding."""
    mods, name = _split(key)
    shift, alt, ctrl = "shift" in mods, "alt" in mods or "meta" in mods, "ctrl" in mods
    modifier = 1 + shift + 2 * alt + 4 * ctrl  # xterm's modifier parameter

    if name in _CURSOR_KEYS:
        final = _CURSOR_KEYS[name]
        if modifier > 1:
            return f"{_CSI}1;{modifier}{final}".encode()
        return ((_SS3 if application_cursor else _CSI) + final).encode()
    if name in _TILDE_KEYS:
        n = _TILDE_KEYS[name]
        return (f"{_CSI}{n};{modifier}~" if modifier > 1 else f"{_CSI}{n}~").encode()
    if name in _SS3_FKEYS:
        final = _SS3_FKEYS[name]
        return (f"{_CSI}1;{modifier}{final}" if modifier > 1 else _SS3 + final).encode()

    prefix = "\x1b" if alt else ""
    if name == "tab" and shift:
        return f"{_CSI}Z".encode()
    if name == "enter":
        return (prefix + "\r").encode()
    if name == "backspace":
        return (prefix + ("\x08" if ctrl else "\x7f")).encode()
    if ctrl:
        if len(name) == 1 and name.isascii() and name.isalpha():
            return (prefix + chr(ord(name.lower()) & 0x1F)).encode()
        if name in _CTRL_SYMBOLS:
            return (prefix + _CTRL_SYMBOLS[name]).encode()
    if name in _PLAIN:
        return (prefix + _PLAIN[name]).encode()
    if character and character.isprintable():
        return (prefix + character).encode()
    if len(name) == 1 and name.isprintable():
        return (prefix + (name.upper() if shift else name)).encode()
    if character and len(character) == 1 and ord(character) < 0x20:
        return (prefix + character).encode()
    return None
