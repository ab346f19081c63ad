"""The store's one writer connection: a plain ``sqlite3`` connection on a thread of its own.

Every statement that may write runs on that thread, through :meth:`Writer.run` (public
``asyncio`` executor API; nothing of aiosqlite's insides). The store decides *when*
(:class:`qms.store.Store` queues every write, a ``write_sync`` job or a ``write()`` body,
through one committer); this module only owns the connection and its thread, and gives
``write()`` bodies their async face (:class:`Transaction`).
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar

from qms.db import PRAGMAS, is_busy

T = TypeVar("T")
I = TypeVar("I")
Params = Sequence[Any] | dict[str, Any]


def connect_sync(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """One connection with the shared pragmas (autocommit: the store issues BEGIN itself)."""
    conn = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        deadline = time.monotonic() + busy_timeout
        for pragma in PRAGMAS:
            while True:  # journal_mode=WAL on a brand-new file can meet SQLITE_BUSY at once
                try:
                    conn.execute(pragma)
                    break
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
    except BaseException:
        conn.close()
        raise
    return conn


class Writer:
    """The writer connection and its thread. Open with ``await Writer.open(path, busy_timeout)``."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor

    @classmethod
    async def open(cls, path: Path, busy_timeout: float) -> "Writer":
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qms-writer")
        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, connect_sync, path, busy_timeout)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(conn, executor)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the writer's thread."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
        """Queue ``fn(conn, *args)`` for the writer's thread now (it runs what it was given in
        order); the future holds its result."""
        return asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, self._conn, *args))

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Have ``callback(sql)`` called for every statement the writer runs (tests count commits)."""
        await self.run(lambda conn: conn.set_trace_callback(callback))

    async def close(self) -> None:
        try:
            await self.run(lambda conn: conn.close())
        finally:
            self._executor.shutdown(wait=True)


class Gathering(Generic[I]):
    """The items of work already queued on the writer's thread: more join (on the loop's
    thread) until that thread starts the work and takes them. So what arrives while the
    writer commits is there when that commit ends, and the writer goes on without waiting
    for the event loop (which may be busy answering the last commit's callers)."""

    def __init__(self, items: list[I], limit: int) -> None:
        self.items = items
        self._limit = limit
        self._lock = threading.Lock()
        self._started = False

    def add(self, item: I) -> bool:
        """Join, unless the work was started (or closed) or is full."""
        with self._lock:
            if self._started or len(self.items) >= self._limit:
                return False
            self.items.append(item)
            return True

    def take(self) -> list[I]:
        """The items, fixed from now on (the writer's thread, as its work starts; or the loop's,
        to close it)."""
        with self._lock:
            self._started = True
            return list(self.items)


class Result:
    """A statement's rows (fetched at once, on the writer's thread) and counts."""

    def __init__(self, rows: list[sqlite3.Row], lastrowid: int | None, rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.lastrowid = lastrowid
        self.rowcount = rowcount

    async def fetchone(self) -> sqlite3.Row | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self) -> list[sqlite3.Row]:
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows


def _execute(conn: sqlite3.Connection, sql: str, params: Params) -> Result:
    cur = conn.execute(sql, params)
    rows = cur.fetchall()  # RETURNING rows; rowcount is final once they are fetched
    return Result(rows, cur.lastrowid, cur.rowcount)


def _executemany(conn: sqlite3.Connection, sql: str, seq: list[Params]) -> Result:
    cur = conn.executemany(sql, seq)
    return Result([], cur.lastrowid, cur.rowcount)


class Transaction:
    """What ``async with store.write() as db`` gives: statements run on the writer's thread,
    inside the open ``BEGIN IMMEDIATE`` transaction the store committer began for this body."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def execute(self, sql: str, params: Params = ()) -> Result:
        return await self._writer.run(_execute, sql, params)

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await (await self.execute(sql, params)).fetchall()

    async def executemany(self, sql: str, seq: Iterable[Params]) -> Result:
        return await self._writer.run(_executemany, sql, list(seq))
