"""Erasing, inserting, deleting and scrolling as xterm and tmux do them.

Cells that are erased or inserted (ED, EL, ECH, ICH, DCH, IL, DL) and lines that
SU/SD scroll in take only the background colour of the current attributes (pyte
copies every attribute, so an erase after ``CSI 4 m`` underlined blank cells, and
its ED left cells never written untouched). SU/SD (``CSI n S`` / ``CSI n T``) scroll
the scrolling region. A line feed that scrolls still brings in a default blank line
(tmux colours it too; see the README's terminal notes). Each keeps the rows' wrap
markers and used widths as tmux 3.3a does (``wrapping.Line``): a row cleared whole is
emptied and so is the marker of the row above it (the last scrollback row above the
top row); clearing part of a row leaves both; insert/delete character move the used
width as tmux moves cells. A mixin for ``TerminalScreen`` (pyte's ``Screen`` underneath).
"""

from __future__ import annotations

from typing import Optional

from pyte import modes as mo

from .cells import Cell

#: Distinct blank cells remembered (a bound for hostile streams).
MAX_BLANKS = 256


class BackgroundEditing:
    """Editing operations of a pyte Screen, with background-colour erase."""

    _blanks: dict

    def _blank(self) -> Cell:
        bg = self.cursor.attrs.bg
        key = (bg, mo.DECSCNM in self.mode)
        cell = self._blanks.get(key)
        if cell is None:
            if len(self._blanks) >= MAX_BLANKS:
                self._blanks.clear()
            cell = self._blanks[key] = self.default_char._replace(bg=bg)
        return cell

    # -- wrap markers (tmux's grid_clear_lines) ----------------------------------
    def _unwrap(self, y: int) -> None:
        """Row y no longer continues on the next (y -1: the last scrollback row)."""
        if y >= 0:
            line = self.buffer.get(y)
            if line is not None and line.wrapped:
                line.wrapped = False
        elif self.history:
            last = self.history[-1]
            if getattr(last, "wrapped", False):
                if isinstance(last, str):
                    self.history[-1] = str.__str__(last)
                else:
                    last.wrapped = False

    def _cleared_whole(self, start: int, end: int) -> None:
        """Rows start..end-1 were cleared whole: empty, and not continued from above."""
        if start >= end:
            return
        buffer = self.buffer
        for y in range(start, end):
            line = buffer[y]
            line.used = 0
            line.wrapped = False
        self._unwrap(start - 1)

    def _cleared_line(self, start: int, end: int) -> None:
        """Columns start..end-1 of the cursor's row were erased (a whole row clear
        when they span it and the row was ever written, as tmux's clearline)."""
        if start <= 0 and end >= self.columns:
            y = self.cursor.y
            if self.buffer[y].used or self._blank() != self.default_char:
                self._cleared_whole(y, y + 1)

    def erase_in_display(self, how: int = 0, *args, **kwargs) -> None:
        cursor = self.cursor
        if how == 0:
            interval = range(cursor.y + 1, self.lines)
        elif how == 1:
            interval = range(cursor.y)
        elif how in (2, 3):
            interval = range(self.lines)
        else:
            return
        self._cleared_whole(interval.start, interval.stop)
        self.dirty.update(interval)
        blank = self._blank()
        plain = blank == self.default_char
        buffer, columns = self.buffer, self.columns
        for y in interval:
            line = buffer[y]
            line.clear()
            if not plain:
                line.update(dict.fromkeys(range(columns), blank))
        if how in (0, 1):
            x = cursor.x
            if (x == 0) if how == 0 else (x >= self.columns - 1):  # the cursor's row goes whole
                self._cleared_whole(cursor.y, cursor.y + 1)
            self.erase_in_line(how)

    def erase_characters(self, count: Optional[int] = None) -> None:
        cursor = self.cursor
        self.dirty.add(cursor.y)
        end = min(cursor.x + (count or 1), self.columns)
        self._cleared_line(cursor.x, end)
        self.buffer[cursor.y].update(dict.fromkeys(range(cursor.x, end), self._blank()))

    def insert_characters(self, count: Optional[int] = None) -> None:
        x, n = self.cursor.x, count or 1
        super().insert_characters(count)
        if x < self.columns - 1 and x + n < self.columns:  # tmux moved cells up to the edge
            self.buffer[self.cursor.y].used = self.columns
        self._fill_blank(self.cursor.y, self.cursor.x, min(self.columns, self.cursor.x + n))

    def delete_characters(self, count: Optional[int] = None) -> None:
        x, n = self.cursor.x, count or 1
        super().delete_characters(count)
        n = min(n, self.columns - x)
        line = self.buffer[self.cursor.y]
        if x + n < self.columns and line.used < self.columns - n:  # as tmux moves cells
            line.used = self.columns - n
        self._fill_blank(self.cursor.y, max(self.cursor.x, self.columns - n), self.columns)

    def insert_lines(self, count: Optional[int] = None) -> None:
        y = self.cursor.y
        top, bottom = self.margins or (0, self.lines - 1)
        n = count or 1
        if top <= y <= bottom and y + n - 1 < bottom:
            self._unwrap(y + n - 1)
        super().insert_lines(count)
        if top <= y <= bottom:
            self._unwrap(y - 1)
            for row in range(y, min(bottom + 1, y + n)):
                self._fill_blank(row, 0, self.columns)

    def delete_lines(self, count: Optional[int] = None) -> None:
        y = self.cursor.y
        super().delete_lines(count)
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= y <= bottom:
            self._unwrap(y - 1)
            first_blank = max(y, bottom + 1 - (count or 1))
            self._unwrap(first_blank - 1)
            for row in range(first_blank, bottom + 1):
                self._fill_blank(row, 0, self.columns)

    def reverse_index(self) -> None:
        top, _bottom = self.margins or (0, self.lines - 1)
        if self.cursor.y == top:  # tmux moves the region down: the rows at its top lose their marker
            self._unwrap(top)
            self._unwrap(top - 1)
        super().reverse_index()

    def _fill_blank(self, y: int, start: int, end: int) -> None:
        blank = self._blank()
        if blank != self.default_char and start < end:
            self.buffer[y].update(dict.fromkeys(range(start, end), blank))

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        """pyte's EL (cells take the background only), written in one ``dict.update``."""
        cursor = self.cursor
        self.dirty.add(cursor.y)
        if how == 0:
            interval = range(cursor.x, self.columns)
        elif how == 1:
            interval = range(cursor.x + 1)
        elif how == 2:
            interval = range(self.columns)
        else:
            return  # pyte raises UnboundLocalError here; the parser ignores it
        self._cleared_line(interval.start, interval.stop)
        self.buffer[cursor.y].update(dict.fromkeys(interval, self._blank()))

    def scroll_up(self, count: int = 1) -> None:
        """SU: the scrolling region's lines move up ``count``, blank lines enter below;
        the cursor stays. Off the top of the full primary screen they go to scrollback."""
        top, bottom = self.margins or (0, self.lines - 1)
        count = max(1, min(count, bottom - top + 1))
        buffer = self.buffer
        if not self.alternate and (top, bottom) == (0, self.lines - 1):
            for y in range(count):
                self._push_history(buffer.get(y))
        for y in range(top, bottom + 1):
            if y + count <= bottom and y + count in buffer:
                buffer[y] = buffer.pop(y + count)
            else:
                buffer.pop(y, None)
        for y in range(bottom + 1 - count, bottom + 1):
            self._fill_blank(y, 0, self.columns)
        self.dirty.update(range(top, bottom + 1))

    def scroll_down(self, count: int = 1, *rest: int) -> None:
        """SD: the scrolling region's lines move down ``count``, blank lines enter above.
        (With five parameters this is xterm's mouse highlight tracking: ignored.)"""
        if rest:
            return
        top, bottom = self.margins or (0, self.lines - 1)
        count = max(1, min(count, bottom - top + 1))
        buffer = self.buffer
        self._unwrap(top)
        self._unwrap(top - 1)
        for y in range(bottom, top - 1, -1):
            if y - count >= top and y - count in buffer:
                buffer[y] = buffer.pop(y - count)
            else:
                buffer.pop(y, None)
        for y in range(top, top + count):
            self._fill_blank(y, 0, self.columns)
        self.dirty.update(range(top, bottom + 1))
