"""A dump of every table, to prove that a refused action changed nothing (but, when asked,
its ``doc.refused`` event: a refusal is recorded even though the action is not)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def dump(path: Path, *, without_refusals: bool = False) -> dict[str, list[tuple]]:
    """Every row of every table, through a separate plain sqlite3 connection
    (``without_refusals``: leave out the events of kind ``doc.refused``)."""
    con = sqlite3.connect(str(path))
    try:
        tables = [
            r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        out = {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
        if without_refusals and "events" in out:
            out["events"] = con.execute(
                "SELECT * FROM events WHERE kind != 'doc.refused' ORDER BY rowid").fetchall()
        return out
    finally:
        con.close()
