"""Column widths that fit the cells: a table as wide as its rows need.

Computed here and given to the DataTable as fixed widths (its own auto widths only grow, and
are measured on an idle tick: a frame drawn before it shows columns cut to their labels)."""

from __future__ import annotations

from typing import Iterable, Sequence

from rich.text import Text

MAX_WIDTH = 60  # a column never takes more than this, however long a cell


def fit_widths(labels: Sequence[str], fixed: Sequence[int | None], rows: Iterable[Sequence[Text]],
               *, cap: int = MAX_WIDTH) -> list[int]:
    """Each column's width: its fixed width, or the widest of its label and cells (at most ``cap``)."""
    widths = [w if w is not None else Text(label).cell_len for label, w in zip(labels, fixed)]
    for cells in rows:
        for i, cell in enumerate(cells):
            if fixed[i] is None:
                widths[i] = max(widths[i], min(cap, cell.cell_len))
    return widths
