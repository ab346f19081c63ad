"""Painting the terminal's cells: emulator cells (character + attributes) into Rich
segments for Textual's line API, with a bounded cache of styles by attributes."""

from __future__ import annotations

from typing import Optional

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from crowdtui.terminal import Cell

STYLE_CACHE_MAX = 4096  # distinct attribute sets kept; the cache starts over beyond it

_ANSI_NAMES = {
    "black": 0, "red": 1, "green": 2, "brown": 3, "yellow": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7,
}
_HEX = set("0123456789abcdefABCDEF")


def _colour(name: str) -> Optional[str]:
    if name == "default":
        return None
    if name.startswith("bright") and name[6:] in _ANSI_NAMES:
        return f"color({_ANSI_NAMES[name[6:]] + 8})"
    if name in _ANSI_NAMES:
        return f"color({_ANSI_NAMES[name]})"
    if len(name) == 6 and set(name) <= _HEX:
        return f"#{name}"
    return None


def _wide(ch: str) -> bool:
    return cell_len(ch) == 2


class CellPainter:
    """Cells to strips for one terminal; keeps the styles it has made."""

    def __init__(self) -> None:
        self._styles: dict[tuple, Style] = {}

    def style(self, key: tuple) -> Style:
        """Style for a cell's attributes (Cell fields after data), plus a cursor flag."""
        style = self._styles.get(key)
        if style is None:
            fg, bg, bold, italics, underscore, strike, reverse, blink, dim = key[:9]
            shape = key[9] if len(key) > 9 else None  # the cursor is on this cell
            cursor = shape in ("block", "bar")
            underscore = underscore or shape == "underline"
            style = Style(
                color=_colour(fg),
                bgcolor=_colour(bg),
                bold=bold or None,
                italic=italics or None,
                underline=underscore or None,
                strike=strike or None,
                reverse=(reverse ^ cursor) or None,
                blink=blink or None,
                dim=dim or None,
            )
            if len(self._styles) > STYLE_CACHE_MAX:
                self._styles.clear()
            self._styles[key] = style
        return style

    def strip(self, cells: list[Cell], width: int, cursor_x: Optional[int], cursor_shape: str = "block") -> Strip:
        """One row of cells as a strip ``width`` wide; ``cursor_x`` is the cursor's column on
        this row (None: not on it), drawn in ``cursor_shape``."""
        segments: list[Segment] = []
        text: list[str] = []
        run_key: Optional[tuple] = None
        skip_stub = False
        last = len(cells) - 1
        for x, cell in enumerate(cells):
            data = cell[0]
            if not data:
                if skip_stub:
                    skip_stub = False
                    continue
                data = " "
            elif skip_stub:
                skip_stub = False
            if data > "\u10ff" and len(data) == 1 and _wide(data):
                if x < last and cells[x + 1][0] == "":
                    skip_stub = True
                else:
                    data = " "  # a wide character without room: blank keeps columns aligned
            key = cell[1:] if x != cursor_x else cell[1:] + (cursor_shape,)
            if key != run_key:
                if text:
                    segments.append(Segment("".join(text), self.style(run_key)))
                    text = []
                run_key = key
            text.append(data)
        if text:
            segments.append(Segment("".join(text), self.style(run_key)))
        return Strip(segments).adjust_cell_length(width)

