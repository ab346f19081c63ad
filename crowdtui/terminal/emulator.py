"""The terminal emulator: bytes in, a screen of styled cells out (headless)."""

from __future__ import annotations

import codecs
from typing import Callable, Optional

from pyte import modes as mo
from pyte.charsets import LAT1_MAP

from . import fastpath
from .cells import Cell
from .parser import TerminalStream
from .screen import CarriedLine, TerminalScreen

#: Runs of fast-path text shorter than this are not worth the bookkeeping.
FAST_PATH_MIN_CHARS = 2048


class Emulator:
    """A terminal: feed it the program's output, read cells, cursor and modes.

    ``feed`` never raises on any input. Output that is certain to scroll off the
    screen is skipped without being drawn cell by cell (see ``fastpath``), so the
    final screen is what cell-by-cell processing gives, at a fraction of the cost.
    """

    def __init__(
        self,
        rows: int = 24,
        cols: int = 80,
        *,
        scrollback: int = 5000,
        fast_path: bool = True,
        on_reply: Optional[Callable[[bytes], None]] = None,
    ) -> None:
        self.screen = TerminalScreen(max(1, cols), max(1, rows), scrollback=scrollback)
        self.stream = TerminalStream(self.screen)
        self.fast_path = fast_path
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.on_reply = on_reply
        self.screen.reply = self._reply
        self.screen.text_cells = self._text_row_cells
        #: Characters skipped by the fast path (for benchmarks and tests).
        self.skipped_chars = 0
        self._scratch: Optional["Emulator"] = None
        self._wide_scratch: Optional["Emulator"] = None

    # -- input ---------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Process program output (UTF-8, decoded incrementally)."""
        self.feed_text(self._decoder.decode(data))

    def feed_text(self, text: str) -> None:
        if not self.fast_path or len(text) < FAST_PATH_MIN_CHARS:
            self._feed(text)
            return
        n = len(text)
        pos = 0
        while pos < n:
            if n - pos < FAST_PATH_MIN_CHARS:
                self._feed(text[pos:])
                return
            if self.stream._taking_plain_text:
                m = fastpath.NOT_G.search(text, pos)
                qend = m.start() if m else n
                if qend - pos >= FAST_PATH_MIN_CHARS:
                    pos = self._skip(text, pos, qend)
            else:
                qend = pos
            nl = text.find("\n", qend)
            stop = n if nl < 0 else nl + 1
            self._feed_span(text, pos, stop)
            pos = stop

    def _feed_span(self, text: str, start: int, end: int) -> None:
        """Feed text[start:end], skipping row rewrites that a later rewrite of the same
        row in the same stretch makes invisible (see ``fastpath.ROW_REWRITE``)."""
        if end - start < FAST_PATH_MIN_CHARS:
            self._feed(text[start:end])
            return
        screen = self.screen
        pos = start
        for run in fastpath.row_rewrites(text, start, end, screen.lines, screen.columns):
            first = run[0][0]
            if first > pos:
                self._feed(text[pos:first])
                pos = first
            if not self.stream._taking_plain_text or mo.DECOM in screen.mode or mo.IRM in screen.mode:
                continue  # not in a state where the claim holds: fed as it is, later
            last = {y: i for i, (_s, _e, y) in enumerate(run)}
            live_from = dead_from = -1
            for i, (s, e, y) in enumerate(run):
                if last[y] != i:  # rewritten again later in this run
                    if live_from >= 0:
                        self._feed(text[live_from:s])
                        live_from = -1
                    if dead_from < 0:
                        dead_from = s
                    continue
                if dead_from >= 0:
                    self._feed(fastpath.sgr_replay(text, dead_from, s))
                    self.skipped_chars += s - dead_from
                    dead_from = -1
                if live_from < 0:
                    live_from = s
            # the last rewrite of a run is always live
            self._feed(text[live_from : run[-1][1]])
            pos = run[-1][1]
        if pos < end:
            self._feed(text[pos:end])

    def _feed(self, text: str) -> None:
        if not text:
            return
        try:
            self.stream.feed(text)
        except Exception:
            # Handlers are guarded in the parser; this is the last line of
            # defence: start from a clean parser state rather than stay broken.
            self.stream._initialize_parser()

    def _skip(self, text: str, start: int, end: int) -> int:
        """Jump over text[start:j] (see fastpath); returns where to continue."""
        screen = self.screen
        rows, cols = screen.lines, screen.columns
        if screen.margins is not None and (screen.margins.top, screen.margins.bottom) != (0, rows - 1):
            return start
        if (screen.g1_charset if screen.charset else screen.g0_charset) is not LAT1_MAP:
            return start  # line-drawing letters: the scrollback text would be wrong
        y0, x0 = screen.cursor.y, screen.cursor.x
        j = fastpath.find_cut(text, start, end, rows, y0)
        if j < 0:
            return start
        sgr = fastpath.sgr_replay(text, start, j)
        buffer = screen.buffer
        if not screen.alternate:
            limit = screen.history.maxlen or 0
            for y in range(y0):
                screen._push_history(buffer.get(y))
            prefix = fastpath.row_text(buffer.get(y0), cols, upto=x0)
            # text[j-1] is the CR of the CR LF: nothing follows it on that line.
            texts = fastpath.history_rows(text[start : j - 1], cols, limit, prefix=prefix)
            screen.history.extend(texts)
            screen.history_changed += len(texts)
        # Rows above the cursor are certain to scroll off before the run ends;
        # their text is already in scrollback, so they stand in blank.
        buffer.clear()
        default = screen.default_char
        for y in range(rows - 1):
            buffer[y] = CarriedLine(default)
        screen.cursor.y = rows - 1
        screen.cursor.x = 0
        screen.dirty.update(range(rows))
        if sgr:
            self._feed(sgr)
        self.skipped_chars += j + 1 - start
        return j + 1

    def _reply(self, data: str) -> None:
        if self.on_reply is not None:
            self.on_reply(data.encode())

    def resize(self, rows: int, cols: int) -> None:
        rows, cols = max(1, rows), max(1, cols)
        if (rows, cols) != (self.screen.lines, self.screen.columns):
            self.screen.resize(rows, cols)

    # -- state ------------------------------------------------------------------
    @property
    def rows(self) -> int:
        return self.screen.lines

    @property
    def cols(self) -> int:
        return self.screen.columns

    @property
    def cursor(self) -> tuple[int, int]:
        """(x, y) of the cursor; x may equal cols when a wrap is pending."""
        return self.screen.cursor.x, self.screen.cursor.y

    @property
    def cursor_visible(self) -> bool:
        return not self.screen.cursor.hidden

    @property
    def cursor_shape(self) -> str:
        return self.screen.cursor_shape

    @property
    def title(self) -> str:
        return self.screen.title

    @property
    def alternate(self) -> bool:
        return self.screen.alternate

    @property
    def application_cursor(self) -> bool:
        return self.screen.application_cursor

    @property
    def application_keypad(self) -> bool:
        return self.screen.keypad_application

    @property
    def bracketed_paste(self) -> bool:
        return self.screen.bracketed_paste

    @property
    def mouse_tracking(self) -> str:
        return self.screen.mouse_tracking

    @property
    def mouse_encoding(self) -> str:
        return self.screen.mouse_encoding

    @property
    def history_size(self) -> int:
        return len(self.screen.history)

    def line(self, y: int) -> list[Cell]:
        """The cells of screen row y (cols of them)."""
        line = self.screen.buffer.get(y)
        default = self.screen.default_char
        if not line:
            return [default] * self.cols
        return [line[x] if x in line else line.default for x in range(self.cols)]

    def history_line(self, index: int) -> list[Cell]:
        """Scrollback row ``index`` (0 = oldest), padded or cut to cols."""
        row = self.screen.history[index]
        default = self.screen.default_char
        cols = self.cols
        if isinstance(row, str):
            if "\x1b" in row or "\x08" in row:
                return self._draw_text_row(row)
            cells = [default._replace(data=ch) for ch in row[:cols]]
            return cells + [default] * (cols - len(cells))
        return [row.get(x, default) for x in range(cols)]

    def _draw_text_row(self, row: str) -> list[Cell]:
        """Cells of a fast-path scrollback row kept with its escapes."""
        scratch = self._scratch
        if scratch is None or scratch.cols != self.cols:
            scratch = self._scratch = Emulator(1, self.cols, scrollback=0, fast_path=False)
        # Default attributes, home, clear, no autowrap: the row cannot spill.
        scratch.feed_text("\x18\x1b[0m\x1b[H\x1b[2K\x1b[?7l" + row)
        return scratch.line(0)

    def _text_row_cells(self, row: str) -> list[Cell]:
        """The written cells of a fast-path scrollback row kept with its escapes (for
        reflow; the row is drawn as wide as it may be)."""
        scratch = self._wide_scratch
        if scratch is None or scratch.cols < len(row):
            scratch = self._wide_scratch = Emulator(1, max(len(row), 256), scrollback=0, fast_path=False)
        scratch.feed_text("\x18\x1b[0m\x1b[H\x1b[2K\x1b[?7l" + row)
        line = scratch.screen.buffer[0]
        return [line[x] for x in range(line.used)]

    def text(self) -> list[str]:
        """The screen as strings, one per row (wide-character stubs omitted)."""
        return ["".join(c.data for c in self.line(y)) for y in range(self.rows)]

    def take_dirty(self) -> set[int]:
        """Rows changed since the last call."""
        dirty = {y for y in self.screen.dirty if 0 <= y < self.rows}
        self.screen.dirty.clear()
        return dirty
