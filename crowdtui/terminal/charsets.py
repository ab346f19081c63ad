"""Character sets a program can designate (``ESC ( X`` / ``ESC ) X``, then SO/SI).

Only what xterm and tmux act on: ``B`` (ASCII) and ``0`` (DEC special graphics, the
line-drawing set ncurses uses for boxes even in a UTF-8 locale). Each line-drawing
letter displays as tmux's client draws it in UTF-8 (tmux's table, a superset of
xterm's: it also maps the VT100 arrow letters ``+,-.0``).
"""

from __future__ import annotations

from pyte.charsets import LAT1_MAP

DEC_GRAPHICS_LETTERS = "+,-.0`abcdefghijklmnopqrstuvwxyz{|}~"
DEC_GRAPHICS_SHOWN = "→←↑↓▮◆▒␉␌␍␊°±␤␋┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·"

#: A ``str.translate`` table: letter -> what is displayed.
DEC_GRAPHICS = {ord(a): b for a, b in zip(DEC_GRAPHICS_LETTERS, DEC_GRAPHICS_SHOWN)}

#: Final byte of a designation -> translation table (LAT1_MAP leaves text as it is).
CHARSETS = {"B": LAT1_MAP, "0": DEC_GRAPHICS}
