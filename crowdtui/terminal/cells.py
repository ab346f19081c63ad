"""A screen cell: pyte's Char plus the attributes pyte lacks (dim)."""

from __future__ import annotations

from typing import NamedTuple


class Cell(NamedTuple):
    """One styled character cell.

    Same fields and order as ``pyte.screens.Char`` (so pyte's own code works on
    it), plus ``dim``. Colours are pyte's: ``"default"``, a name such as
    ``"red"``/``"brightblue"``, or six hex digits (256-colour and true colour).
    A wide character occupies its cell and a following stub cell whose data is "".
    """

    data: str
    fg: str = "default"
    bg: str = "default"
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    strikethrough: bool = False
    reverse: bool = False
    blink: bool = False
    dim: bool = False


BLANK = Cell(" ")
