"""Rows that remember how they were written, and reflow when the width changes (as tmux).

Each screen row is a ``Line``: pyte's row of cells plus the two facts tmux keeps for a
grid line. ``wrapped``: autowrap carried the text on to the next row (set when a
character is drawn past the right edge; cleared when the row, or the row below it, is
cleared whole). ``used``: how many cells from the left were ever written (tmux's
``cellused``: drawing raises it, insert/delete character moves it as tmux moves cells,
erasing part of a row leaves it, clearing the whole row empties it).

``reflow`` is tmux 3.3a's ``grid_reflow`` over scrollback and screen together: a row
as wide as the new width, or shorter and not wrapped, stays as it is; a longer row is
split; a wrapped row takes in as much of the rows after it as fits. Rows that were not
wrapped are never joined. The cursor keeps its place in the text (tmux's
``grid_wrap_position``/``grid_unwrap_position``): a cursor at or past the end of its
row's text lands at the end of the text.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter
from typing import Callable, Optional, Sequence

from pyte.screens import StaticDefaultDict

from .cells import Cell


_DATA = itemgetter(0)  # a Cell's character


class Line(StaticDefaultDict):
    """A screen row: column -> Cell, with tmux's wrap marker and used width."""

    wrapped = False
    used = 0


class WrappedText(str):
    """A scrollback row kept as text (flood fast path) whose line goes on in the next row."""

    wrapped = True


def row_used(row, text_cells: Callable[[str], list]) -> int:
    if isinstance(row, str):
        if "\x1b" in row or "\x08" in row:
            return len(text_cells(row))
        return len(row)
    return getattr(row, "used", 0)


class _PlainCells(dict):
    """character -> a cell of it with default attributes, made on first use."""

    def __init__(self, default: Cell) -> None:
        super().__init__()
        self.default = default

    def __missing__(self, ch: str) -> Cell:
        cell = self[ch] = self.default._replace(data=ch)
        return cell


def row_cells(row, used: int, text_cells: Callable[[str], list], plain: "_PlainCells") -> list:
    """The first ``used`` cells of a row (a Line, a plain dict or a text row)."""
    if isinstance(row, str):
        if "\x1b" in row or "\x08" in row:
            return text_cells(row)
        return list(map(plain.__getitem__, row))
    return list(map(row.get, range(used), repeat(plain.default, used)))


def _cell_widths(cells: Sequence[Cell]) -> Optional[list[int]]:
    """Display width of each cell: a wide character 2, its stub 0 (tmux's padding);
    None when every cell is one column wide (no stubs)."""
    if "" not in map(_DATA, cells):
        return None
    n = len(cells)
    return [0 if c.data == "" else 2 if i + 1 < n and cells[i + 1].data == "" else 1
            for i, c in enumerate(cells)]


def reflow(
    rows: list,
    columns: int,
    screen_lines: int,
    cursor: tuple[int, int],
    text_cells: Callable[[str], list],
    default: Cell,
) -> tuple[list, int, tuple[int, int]]:
    """Rewrap ``rows`` (scrollback then screen) at ``columns``.

    ``cursor`` is (x, absolute row). Returns the new rows, how many of them are
    scrollback (the rest, ``screen_lines`` of them, are the screen) and the cursor as
    (x, absolute row); an absolute row before the screen means the cursor's text went
    into scrollback.
    """
    n = len(rows)
    used: list[Optional[int]] = [None] * n
    cells: list[Optional[list]] = [None] * n
    wrapped = [bool(getattr(r, "wrapped", False)) for r in rows]
    changed = bytearray(n)  # a join took cells from the front of this row
    dead = bytearray(n)  # wholly joined on to an earlier row

    def used_of(i: int) -> int:
        u = used[i]
        if u is None:
            u = used[i] = row_used(rows[i], text_cells)
        return u

    plain = _PlainCells(default)

    def cells_of(i: int) -> list:
        c = cells[i]
        if c is None:
            c = cells[i] = row_cells(rows[i], used_of(i), text_cells, plain)
            used[i] = len(c)
        return c

    # Where the cursor is in the text (tmux's grid_wrap_position).
    cx, cy = cursor
    cy = min(max(cy, 0), n - 1)
    ax = ay = 0
    for y in range(cy):
        if wrapped[y]:
            ax += used_of(y)
        else:
            ax = 0
            ay += 1
    wx: Optional[int] = None if cx >= used_of(cy) else ax + cx
    wy = ay

    out: list = []  # a row kept as it was, or [cells, wrapped] for a new one

    def join(y: int, width: int, already: bool) -> None:
        """Append rows after y to the last output row while they fit (grid_reflow_join)."""
        if already:
            entry = out[-1]
        else:
            entry = [list(cells_of(y)), wrapped[y]]
            out.append(entry)
        target = entry[0]
        lines = 0
        still = True  # every row joined so far was wrapped
        src = -1
        want = 0
        while y + 1 + lines < n:
            line = y + 1 + lines
            if not wrapped[line]:
                still = False
            if used_of(line) == 0:
                if not still:
                    break
                lines += 1
                continue
            c = cells_of(line)
            widths = _cell_widths(c)
            if widths is None:  # one column each: as much as there is room for
                if width + 1 > columns:
                    break
                want = min(len(c), columns - width)
                width += want
            else:
                if width + widths[0] > columns:
                    break
                want = 0
                for w in widths:
                    if width + w > columns:
                        break
                    width += w
                    want += 1
            target.extend(c[:want])
            src = line
            lines += 1
            if not still or want != len(c) or width == columns:
                break
        if lines == 0:
            return
        left = len(cells_of(src)) - want if src >= 0 else 0
        if left:
            cells[src] = cells_of(src)[want:]
            used[src] = left
            changed[src] = 1
            lines -= 1
        elif not still:
            entry[1] = False
        for i in range(y + 1, y + 1 + lines):
            dead[i] = 1

    def split(y: int) -> None:
        """Cut a row longer than ``columns`` into rows (grid_reflow_split)."""
        c = cells_of(y)
        widths = _cell_widths(c)
        if widths is None:  # one column each: cut every ``columns`` cells
            out.extend([c[k : k + columns], True] for k in range(0, len(c) - columns, columns))
            piece = c[(len(c) - 1) // columns * columns :]
            width = len(piece)
        else:
            piece = []
            width = 0
            for cell, w in zip(c, widths):
                if width + w > columns and piece:
                    out.append([piece, True])
                    piece, width = [], 0
                piece.append(cell)
                width += w
        out.append([piece, wrapped[y]])
        if width < columns and wrapped[y]:
            join(y, width, True)

    for y in range(n):
        if dead[y]:
            continue
        width = used_of(y)
        if width > columns:
            first = (_cell_widths(cells_of(y)[:2]) or [1])[0]
            if first > columns:
                out.append([cells_of(y), wrapped[y]] if changed[y] else rows[y])
            else:
                split(y)
        elif width < columns and wrapped[y]:
            join(y, width, False)
        else:
            out.append([cells_of(y), wrapped[y]] if changed[y] else rows[y])

    # Back to rows; the screen is always full (blank rows below), the rest is scrollback.
    new_rows: list = []
    new_used: list[int] = []
    new_wrapped: list[bool] = []
    for entry in out:
        if type(entry) is list:
            c, w = entry
            line = Line(default)
            line.update(zip(range(len(c)), c))
            line.used = len(c)
            if w:
                line.wrapped = True
            new_rows.append(line)
            new_used.append(len(c))
            new_wrapped.append(w)
        else:
            new_rows.append(entry)
            new_used.append(-1)  # looked up only if the cursor needs it
            new_wrapped.append(bool(getattr(entry, "wrapped", False)))
    while len(new_rows) < screen_lines:
        new_rows.append(Line(default))
        new_used.append(0)
        new_wrapped.append(False)
    total = len(new_rows)

    def new_used_of(i: int) -> int:
        if new_used[i] < 0:
            new_used[i] = row_used(new_rows[i], text_cells)
        return new_used[i]

    # The cursor back into rows (tmux's grid_unwrap_position).
    yy = ay = 0
    while yy < total - 1 and ay != wy:
        if not new_wrapped[yy]:
            ay += 1
        yy += 1
    if wx is None:
        while new_wrapped[yy] and yy < total - 1:
            yy += 1
        px = new_used_of(yy)
    else:
        while new_wrapped[yy] and yy < total - 1:
            if wx < new_used_of(yy):
                break
            wx -= new_used_of(yy)
            yy += 1
        px = wx
    return new_rows, total - screen_lines, (min(px, columns), yy)
