"""A dump of every table, to prove that a refused action changed nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, through a separate plain sqlite3 connection."""
    con = sqlite3.connect(str(path))
    try:
        tables = [
            r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        con.close()
