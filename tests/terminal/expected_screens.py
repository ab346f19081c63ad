"""Turn a tmux `capture-pane -e -p` dump into cells, and cells into comparable tuples.

This parser is deliberately independent of the emulator under test (no pyte): it
understands only what tmux emits in a capture — text, SGR sequences and SO/SI around
cells drawn from the DEC line-drawing set, with both states carrying over from one
line to the next. A capture shows such cells as their ASCII letters; what tmux
*displays* for each letter was recorded from a tmux client (streams/tmux_acs.json),
and that is what the emulator's cells are compared with.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import NamedTuple

from rich.cells import cell_len

ANSI16 = ["000000", "cd0000", "00cd00", "cdcd00", "0000ee", "cd00cd", "00cdcd", "e5e5e5",
          "7f7f7f", "ff0000", "00ff00", "ffff00", "5c5cff", "ff00ff", "00ffff", "ffffff"]


def palette(n: int) -> str:
    """xterm's 256-colour palette as rrggbb."""
    if n < 16:
        return ANSI16[n]
    if n < 232:
        n -= 16
        levels = [0, 0x5F, 0x87, 0xAF, 0xD7, 0xFF]
        return "".join(f"{levels[v]:02x}" for v in (n // 36, (n // 6) % 6, n % 6))
    v = 8 + (n - 232) * 10
    return f"{v:02x}" * 3


NAMES = {"black": 0, "red": 1, "green": 2, "brown": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7}


class ECell(NamedTuple):
    data: str
    fg: str
    bg: str
    bold: bool
    dim: bool
    italics: bool
    underscore: bool
    blink: bool
    reverse: bool
    strikethrough: bool


DEFAULT = ECell(" ", "default", "default", False, False, False, False, False, False, False)
NOT_CAPTURED = DEFAULT._replace(bg=None)
_TOKEN = re.compile(r"\x1b\[([0-9;:]*)m|([\x0e\x0f])")
_ACS = json.loads((Path(__file__).resolve().parent / "streams" / "tmux_acs.json").read_text())
TMUX_LINE_DRAWING = dict(zip(_ACS["letters"], _ACS["displayed"]))


def _apply_sgr(state: dict, params: str) -> None:
    nums = [int(p) if p else 0 for p in params.replace(":", ";").split(";")] if params else [0]
    i = 0
    while i < len(nums):
        a = nums[i]
        if a == 0:
            state.update(DEFAULT._asdict())
        elif a == 1:
            state["bold"] = True
        elif a == 2:
            state["dim"] = True
        elif a == 3:
            state["italics"] = True
        elif a == 4:
            state["underscore"] = True
        elif a == 5:
            state["blink"] = True
        elif a == 7:
            state["reverse"] = True
        elif a == 9:
            state["strikethrough"] = True
        elif a == 22:
            state["bold"] = state["dim"] = False
        elif a == 23:
            state["italics"] = False
        elif a == 24:
            state["underscore"] = False
        elif a == 25:
            state["blink"] = False
        elif a == 27:
            state["reverse"] = False
        elif a == 29:
            state["strikethrough"] = False
        elif 30 <= a <= 37:
            state["fg"] = ANSI16[a - 30]
        elif 40 <= a <= 47:
            state["bg"] = ANSI16[a - 40]
        elif 90 <= a <= 97:
            state["fg"] = ANSI16[a - 90 + 8]
        elif 100 <= a <= 107:
            state["bg"] = ANSI16[a - 100 + 8]
        elif a == 39:
            state["fg"] = "default"
        elif a == 49:
            state["bg"] = "default"
        elif a in (38, 48):
            key = "fg" if a == 38 else "bg"
            if nums[i + 1] == 5:
                state[key] = palette(nums[i + 2])
                i += 2
            elif nums[i + 1] == 2:
                state[key] = "".join(f"{v:02x}" for v in nums[i + 2 : i + 5])
                i += 4
        i += 1


def parse_capture(lines: list[str], rows: int, cols: int) -> list[list[ECell]]:
    state = DEFAULT._asdict()
    shifted = False  # between SO and SI: letters stand for line-drawing characters
    screen: list[list[ECell]] = []
    for y in range(rows):
        text = lines[y] if y < len(lines) else ""
        row: list[ECell] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            for ch in text[pos : m.start()]:
                _put(row, TMUX_LINE_DRAWING.get(ch, ch) if shifted else ch, state)
            if m.group(2):
                shifted = m.group(2) == "\x0e"
            else:
                _apply_sgr(state, m.group(1))
            pos = m.end()
        for ch in text[pos:]:
            _put(row, TMUX_LINE_DRAWING.get(ch, ch) if shifted else ch, state)
        row = row[:cols]
        # Past the last cell a program wrote on a row, capture-pane prints nothing,
        # though tmux displays those cells in the background they were erased with
        # (``CSI K`` with a colour set): there only the background is unknown.
        row += [NOT_CAPTURED] * (cols - len(row))
        screen.append(row)
    return screen


def _put(row: list[ECell], ch: str, state: dict) -> None:
    if unicodedata.combining(ch) and row:
        idx = len(row) - 2 if row[-1].data == "" and len(row) > 1 else len(row) - 1
        row[idx] = row[idx]._replace(data=unicodedata.normalize("NFC", row[idx].data + ch))
        return
    cell = ECell(ch, **{k: v for k, v in state.items() if k != "data"})
    row.append(cell)
    if cell_len(ch) == 2:
        row.append(cell._replace(data=""))


def same_cell(got: ECell, want: ECell) -> bool:
    return got == want or (want.bg is None and got._replace(bg=None) == want)


def normalise_colour(value: str) -> str:
    """pyte's colour spelling -> rrggbb (or "default")."""
    if value == "default":
        return value
    if value.startswith("bright") and value[6:] in NAMES:
        return ANSI16[NAMES[value[6:]] + 8]
    if value in NAMES:
        return ANSI16[NAMES[value]]
    return value.lower()


def emulator_cells(emulator) -> list[list[ECell]]:
    out = []
    for y in range(emulator.rows):
        row = []
        for c in emulator.line(y):
            row.append(ECell(unicodedata.normalize("NFC", c.data), normalise_colour(c.fg), normalise_colour(c.bg),
                             c.bold, c.dim, c.italics, c.underscore, c.blink, c.reverse, c.strikethrough))
        out.append(row)
    return out
