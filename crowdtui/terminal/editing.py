"""Erasing, inserting, deleting and scrolling as xterm and tmux do them.

Cells that are erased or inserted (ED, EL, ECH, ICH, DCH, IL, DL) and lines that
SU/SD scroll in take only the background colour of the current attributes (pyte
copies every attribute, so an erase after ``CSI 4 m`` underlined blank cells, and
its ED left cells never written untouched). SU/SD (``CSI n S`` / ``CSI n T``) scroll
the scrolling region. A line feed that scrolls still brings in a default blank line
(tmux colours it too; see the README's terminal notes). A mixin for
``TerminalScreen`` (pyte's ``Screen`` underneath).
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
            self.erase_in_line(how)

    def erase_characters(self, count: Optional[int] = None) -> None:
        cursor = self.cursor
        self.dirty.add(cursor.y)
        end = min(cursor.x + (count or 1), self.columns)
        self.buffer[cursor.y].update(dict.fromkeys(range(cursor.x, end), self._blank()))

    def insert_characters(self, count: Optional[int] = None) -> None:
        super().insert_characters(count)
        self._fill_blank(self.cursor.y, self.cursor.x, min(self.columns, self.cursor.x + (count or 1)))

    def delete_characters(self, count: Optional[int] = None) -> None:
        super().delete_characters(count)
        self._fill_blank(self.cursor.y, max(self.cursor.x, self.columns - (count or 1)), self.columns)

    def insert_lines(self, count: Optional[int] = None) -> None:
        y = self.cursor.y
        super().insert_lines(count)
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= y <= bottom:
            for row in range(y, min(bottom + 1, y + (count or 1))):
                self._fill_blank(row, 0, self.columns)

    def delete_lines(self, count: Optional[int] = None) -> None:
        y = self.cursor.y
        super().delete_lines(count)
        top, bottom = self.margins or (0, self.lines - 1)
        if top <= y <= bottom:
            for row in range(max(y, bottom + 1 - (count or 1)), bottom + 1):
                self._fill_blank(row, 0, self.columns)

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
        for y in range(bottom, top - 1, -1):
            if y - count >= top and y - count in buffer:
                buffer[y] = buffer.pop(y - count)
            else:
                buffer.pop(y, None)
        for y in range(top, top + count):
            self._fill_blank(y, 0, self.columns)
        self.dirty.update(range(top, bottom + 1))
