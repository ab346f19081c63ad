"""Connections and migrations for the one SQLite file a workspace shares.

Every connection gets the same pragmas: WAL, ``synchronous=FULL`` (an acknowledged
write survives a crash), a busy timeout (several processes share the file) and
foreign keys. Migrations are ``migrations/NNN_name.sql`` files applied in order
inside one ``BEGIN IMMEDIATE`` transaction and recorded in ``schema_migrations``;
nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from qms.errors import QmsError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_RE = re.compile(r"(\d{3})_([a-z0-9_]+)\.sql")
DEFAULT_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another to finish

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        """The file's SQL split into complete statements (so they run inside our transaction)."""
        out: list[str] = []
        buf = ""
        for line in self.path.read_text().splitlines(keepends=True):
            buf += line
            if sqlite3.complete_statement(buf):
                if buf.strip():
                    out.append(buf.strip())
                buf = ""
        if buf.strip() and not all(
            ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
        ):
            raise QmsError(f"migration {self.path.name} ends with an incomplete statement; fix the file")
        return out


def discover_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files, in version order. Two files with one number are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        m = MIGRATION_RE.fullmatch(path.name)
        if not m:
            raise QmsError(f"migration file {path.name} is not named NNN_name.sql; rename it")
        version = int(m.group(1))
        if version in found:
            raise QmsError(
                f"migrations {found[version].path.name} and {path.name} share number {version:03d}; "
                "renumber one of them"
            )
        found[version] = Migration(version, m.group(2), path)
    return [found[v] for v in sorted(found)]


_UNAVAILABLE = {
    sqlite3.SQLITE_FULL: "the disk holding it is full; free space, then retry",
    sqlite3.SQLITE_READONLY: "it is read-only; give this process write access to it and its folder, then retry",
    sqlite3.SQLITE_IOERR: "the disk failed to read or write it (I/O error); check the disk, then retry",
    sqlite3.SQLITE_CANTOPEN: "its files cannot be opened for writing; check the folder's permissions and space",
}


def unavailable(exc: BaseException, path) -> "StoreUnavailable | None":
    """The one-line error for a store that cannot take writes, or None for other errors."""
    from qms.errors import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return exc
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return None
    why = _UNAVAILABLE.get(code & 0xFF)
    if why is None:
        return None
    return StoreUnavailable(f"the store {path} cannot take writes: {why} (nothing of this change was written)")


def is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


async def connect(path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> aiosqlite.Connection:
    """Open one connection with the shared pragmas (autocommit: we issue BEGIN ourselves)."""
    db = await aiosqlite.connect(str(path), timeout=busy_timeout, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        await db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        deadline = time.monotonic() + busy_timeout
        for pragma in PRAGMAS:
            while True:  # journal_mode=WAL on a brand-new file can meet SQLITE_BUSY at once
                try:
                    await db.execute(pragma)
                    break
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.01)
    except BaseException:
        await db.close()
        raise
    return db


async def applied_versions(db: aiosqlite.Connection) -> set[int]:
    rows = await db.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
    )
    if not rows:
        return set()
    return {r[0] for r in await db.execute_fetchall("SELECT version FROM schema_migrations")}


async def migrate(db: aiosqlite.Connection, folder: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied now."""
    migrations = discover_migrations(folder)
    if {m.version for m in migrations} <= await applied_versions(db):
        return []
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = await applied_versions(db)  # again, now that we hold the write lock
        applied: list[int] = []
        for m in migrations:
            if m.version in done:
                continue
            for stmt in m.statements():
                try:
                    await db.execute(stmt)
                except sqlite3.Error as exc:
                    raise QmsError(
                        f"migration {m.path.name} failed: {exc}; fix the file (nothing was applied)"
                    ) from exc
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, time.time()),
            )
            applied.append(m.version)
        await db.execute("COMMIT")
    except BaseException:
        await rollback_quietly(db)
        raise
    return applied


async def rollback_quietly(db: aiosqlite.Connection) -> None:
    """Roll back whatever is open; never raises (used on error paths).

    Always sent (not only when ``in_transaction``): a cancelled ``BEGIN`` may still be
    queued on the connection's thread, and the ROLLBACK is queued behind it.
    """
    try:
        await asyncio.shield(db.execute("ROLLBACK"))
    except BaseException:
        pass
