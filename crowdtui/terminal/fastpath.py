"""Flood fast path: skip output that is certain to scroll off the screen.

The grammar G below holds printable text, CR, LF, TAB, BS, BEL, SGR (``CSI … m``)
and erase-in-line (``CSI [012] K``). None of these moves the cursor up, changes a
mode, the margins, the tab stops or any other state except the cursor position,
its attributes and the cells of the cursor's own row. So within a run of G, with
the scrolling region the full screen:

* the cursor row never decreases; after ``rows - 1 - y0`` line feeds it is on the
  bottom row and every further line feed scrolls;
* if a ``CR LF`` at index ``j`` is followed by at least ``rows - 1`` more line
  feeds in the run, every row on the screen right after that LF scrolls off before
  the run ends, so their contents cannot reach the final screen;
* right after that LF the cursor is at (bottom row, column 0) — CR set the column,
  LF kept it — and its attributes are those set by the SGRs before ``j``.

Hence the screen after the run is the same whether the emulator processes the
bytes before ``j`` cell by cell, or jumps straight to: any rows above, cursor at
(bottom, 0), attributes = replay of the SGRs since the last reset. Only the text
of the skipped lines is kept, for scrollback (each line with its own SGRs).
``tests/terminal/test_flood.py`` checks the claim cell by cell against plain pyte.
"""

from __future__ import annotations

import re
from typing import Optional

from .wrapping import WrappedText

#: First element of a chunk that is NOT in grammar G: a control character other than
#: BEL, BS, TAB, LF, CR, or an ESC that does not begin an SGR or EL. Written as one
#: character class (ESC included) with the ESC case refused by a lookbehind, so that the
#: regex engine scans for the class in C instead of trying two branches at every
#: character (half the instructions on a log flood).
NOT_G = re.compile(r"[\x00-\x06\x0b\x0c\x0e-\x1f\x7f-\x9f](?<!\x1b(?=\[[0-9;]*m|\[[0-2]?K))")
_SGR_AT = re.compile(r"\x1b\[([0-9;]*)m")
_ESCAPES = re.compile(r"\x1b\[[0-9;]*[mK]")
_CONTROLS = re.compile(r"[\x07\x08]")


def find_cut(text: str, start: int, end: int, rows: int, y0: int) -> int:
    """Index of the LF of a ``CR LF`` in text[start:end] that may be skipped to, or -1."""
    pos = end
    for _ in range(rows - 1):
        pos = text.rfind("\n", start, pos)
        if pos < 0:
            return -1
    cr = text.rfind("\r\n", start, pos)
    if cr < 0:
        return -1
    j = cr + 1
    if text.count("\n", start, j) < rows - 1 - y0:
        return -1
    return j


def sgr_replay(text: str, start: int, j: int) -> str:
    """The SGR sequences in text[start:j] that determine the attributes at j.

    Walks back to the last SGR that begins with a reset (empty or zero first
    parameter); from there on every SGR is replayed in order. Without one, all SGRs
    since ``start`` are replayed on top of the current attributes.
    """
    found: list[str] = []
    pos = j
    while True:
        pos = text.rfind("\x1b[", start, pos)
        if pos < 0:
            break
        m = _SGR_AT.match(text, pos)
        if m is None or m.end() > j:
            continue  # an erase-in-line, or beyond the cut
        found.append(m.group(0))
        first = m.group(1).split(";", 1)[0]
        if first.strip("0") == "":
            break
    found.reverse()
    return "".join(found)


def history_rows(text: str, columns: int, limit: int, prefix: str = "") -> list[str]:
    """Up to ``limit`` scrollback rows for ``text``, newest last.

    A line that fits in ``columns`` and has no bare CR or tab is kept as it came
    (with its SGR/EL/BS bytes; ``Emulator.history_line`` draws it in colour, from
    default attributes). Other lines become plain text: CR overwrites from column
    0, tabs expand to 8, long lines wrap at ``columns`` characters (wide
    characters counted as one). The common case runs in C string methods only.
    """
    if limit <= 0:
        return []
    raw = text.replace("\r\n", "\n")
    raw_pieces = raw.rsplit("\n", limit)
    if len(raw_pieces) > limit:
        del raw_pieces[0]  # older than scrollback can hold
    elif prefix:
        raw_pieces[0] = prefix + raw_pieces[0]
    # A row no longer than the screen as it came is no longer without its escapes either:
    # escapes are stripped only from the rows that might not fit.
    if "\r" not in raw and "\t" not in raw and max(map(len, raw_pieces), default=0) <= columns:
        return raw_pieces
    out: list[str] = []
    for raw_piece in raw_pieces:
        if len(raw_piece) <= columns and "\r" not in raw_piece and "\t" not in raw_piece:
            out.append(raw_piece)
            continue
        piece = _ESCAPES.sub("", raw_piece)
        if "\x07" in piece or "\x08" in piece:
            piece = _CONTROLS.sub("", piece)
        if len(piece) <= columns and "\r" not in piece and "\t" not in piece:
            out.append(raw_piece)
            continue
        if "\r" in piece:
            line = ""
            for seg in piece.split("\r"):
                line = seg + line[len(seg):]
            piece = line
        if "\t" in piece:
            piece = piece.expandtabs(8)
        if len(piece) <= columns:
            out.append(piece)
        else:
            rows = [piece[k : k + columns] for k in range(0, max(len(piece), 1), columns)]
            out.extend(map(WrappedText, rows[:-1]))  # autowrap carried these on (for reflow)
            out.append(rows[-1])
    return out[-limit:]


def row_text(line: Optional[dict], columns: int, upto: Optional[int] = None) -> str:
    """The characters of one screen line (for scrollback text)."""
    if not line:
        return ""
    end = columns if upto is None else min(upto, columns)
    return "".join(line[x].data if x in line else " " for x in range(end))


# -- redraw storms ------------------------------------------------------------------
#
# A *row rewrite* R(y) is: any cursor positionings and SGRs, then CUP to (y, column 1),
# then printable ASCII and SGRs only, then EL 0 or EL 2. With origin and insert modes
# off and at most ``columns`` printable characters (so nothing wraps or scrolls), R(y)
# touches row y only, moves the cursor and sets attributes, and leaves row y the same
# whatever it held before: the text from column 0, then the erase to the end of the row.
# So within a stretch of consecutive row rewrites, a rewrite of row y followed later in
# the stretch by another rewrite of row y is dead: skipping it changes no cell. Its
# cursor moves are undone by the next rewrite's CUP, and its attributes are kept by
# replaying its SGRs (``sgr_replay``). ``tests/terminal/test_storm.py`` checks this cell
# by cell against plain pyte.

#: One row rewrite; group 1: the row parameter of its CUP, group 2: the row's body.
ROW_REWRITE = re.compile(
    r"(?:\x1b\[[0-9;]*[Hm])*"
    r"\x1b\[([0-9]*)(?:;1?)?H"
    r"((?:[ -~]++|\x1b\[[0-9;]*m)*+)"  # possessive: no backtracking on hostile input
    r"\x1b\[[02]?K"
)
_SGRS = re.compile(r"\x1b\[[0-9;]*m")


def row_rewrites(text: str, start: int, end: int, rows: int, columns: int):
    """Runs of consecutive row rewrites in text[start:end]: yields lists of
    (start, end, row) for each run of two or more (rows clamped as CUP clamps them)."""
    run: list[tuple[int, int, int]] = []
    last_end = -1
    for m in ROW_REWRITE.finditer(text, start, end):
        body = m.group(2)
        if len(body) > columns and len(_SGRS.sub("", body)) > columns:
            if len(run) > 1:
                yield run
            run = []
            last_end = -1
            continue
        raw = m.group(1)
        line = min(int(raw[:6]), 9999) if raw else 0  # as the parser reads it
        y = min((line or 1) - 1, rows - 1)
        s = m.start()
        if s != last_end and run:
            if len(run) > 1:
                yield run
            run = []
        run.append((s, m.end(), y))
        last_end = m.end()
    if len(run) > 1:
        yield run
