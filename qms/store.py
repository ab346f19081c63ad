"""``Store``: the async API over a workspace's SQLite file.

One writer connection, used only inside ``async with store.write() as db:`` (a
``BEGIN IMMEDIATE`` transaction, one at a time per Store), and one reader
connection for ``store.query``. Sends run their whole transaction in one call on
the writer's thread (``write_sync``). Several Store instances, in one process or
many, may open the same file: SQLite's busy timeout makes writers queue.

A change refused by a quota (``qms.quotas.QuotaExceeded``, raised inside the transaction)
rolls back like any error, and its ``quota.refused`` event is then committed on its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence, TypeVar

import aiosqlite

from qms.db import DEFAULT_BUSY_TIMEOUT, connect, is_busy, migrate, rollback_quietly, unavailable
from qms.documents import DocumentsMixin
from qms.errors import Busy, QmsError
from qms.events import INSERT_EVENT, EventsMixin
from qms.messages import MessagesMixin
from qms.quotas import QuotaExceeded, Quotas
from qms.registry import RegistryMixin

T = TypeVar("T")
MAX_GROUP = 256  # jobs sharing one transaction at most


def _run_group(conn: sqlite3.Connection, jobs: list[Callable[[sqlite3.Connection], Any]], path: Path,
               refused: Callable[[sqlite3.Connection, QuotaExceeded], None]) -> list[tuple[Any, BaseException | None]]:
    """One transaction for ``jobs`` (on the writer's thread): each in its own savepoint.
    A job refused by a quota leaves only its ``quota.refused`` event (``refused``)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Busy(f"the store {path} is locked by another writer for too long; try again") from exc
        raise
    outcomes: list[tuple[Any, BaseException | None]] = []
    try:
        for job in jobs:
            conn.execute("SAVEPOINT job")
            try:
                result = job(conn)
            except Exception as exc:
                if not conn.in_transaction:  # SQLite gave up the whole transaction (e.g. disk full)
                    raise
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                if isinstance(exc, QuotaExceeded):
                    try:
                        refused(conn, exc)
                    except sqlite3.Error as err:
                        exc.add_note(f"the quota.refused event could not be written: {err}")
                outcomes.append((None, exc))
                continue
            conn.execute("RELEASE job")
            outcomes.append((result, None))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


class Store(EventsMixin, RegistryMixin, MessagesMixin, DocumentsMixin):
    """Open with ``await Store.open(path)``; close with ``await store.close()``.

    ``event_meta`` is merged into the detail of every event this instance writes
    (the CLI sets ``{"by_operator": True}`` when the operator acts ``--as`` an agent).
    ``quotas`` are the per-agent limits (``qms.quotas``); hosts set them from crowd.toml.
    """

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future]] = []
        self._committer: asyncio.Task | None = None
        self._closed = False
        self.event_meta: dict[str, Any] = {}
        self.quotas = Quotas()

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> "Store":
        """Open (creating the file and its folder if needed) and migrate the store."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QmsError(f"cannot create {path.parent} ({exc.strerror}); check the path and permissions") from exc
        try:
            writer = await connect(path, busy_timeout=busy_timeout)
        except sqlite3.Error as exc:
            raise QmsError(f"cannot open the store {path} ({exc}); check the path and permissions") from exc
        try:
            await migrate(writer)
            reader = await connect(path, busy_timeout=busy_timeout)
        except sqlite3.Error as exc:
            await writer.close()
            if is_busy(exc):
                raise Busy(f"the store {path} stayed locked for {busy_timeout:.0f} s; try again") from exc
            raise QmsError(f"cannot open the store {path} ({exc}); is it a crowdtui database?") from exc
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._committer is not None and not self._committer.done():
            await asyncio.wait([self._committer])  # what was accepted is committed (or failed) first
        async with self._write_lock:
            await self._writer.close()
        await self._reader.close()

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise QmsError("the store is closed; open it again with Store.open(path)")

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction on the writer connection: commit on success,
        roll back on any error. Do not nest (it would wait for itself)."""
        self._check_open()
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                await rollback_quietly(self._writer)
                if is_busy(exc):
                    raise Busy(
                        f"the store {self.path} is locked by another writer for too long; try again"
                    ) from exc
                raise self._unavailable(exc)
            except BaseException:
                await rollback_quietly(self._writer)
                raise
            try:
                yield self._writer
            except QuotaExceeded as exc:
                await rollback_quietly(self._writer)
                await self._writer._execute(self._record_refusal, self._writer._conn, exc)
                raise
            except BaseException as exc:
                await rollback_quietly(self._writer)
                raise self._unavailable(exc)
            try:
                await self._writer.execute("COMMIT")
            except BaseException as exc:
                await rollback_quietly(self._writer)
                raise self._unavailable(exc)

    def _unavailable(self, exc: BaseException) -> BaseException:
        """``exc``, or the store's one-line StoreUnavailable when the disk or file refused."""
        mapped = unavailable(exc, self.path)
        if mapped is None or mapped is exc:
            return exc
        mapped.__cause__ = exc
        return mapped

    async def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a ``BEGIN IMMEDIATE`` transaction on the writer's own thread and
        return its result once that transaction has committed (group commit).

        Writes that arrive while a transaction commits wait together and share the next
        one: one thread hop and one fsync for the group. Each job runs inside its own
        savepoint, so a job that raises is rolled back alone and its caller gets the
        error; the others commit. Nobody is answered before the commit that holds their
        write (a crash before it loses only unacknowledged writes). ``fn`` must not touch
        the event loop.
        """
        self._check_open()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups(), name="qms-group-commit")
        return await asyncio.shield(future)

    async def _commit_groups(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
            try:
                async with self._write_lock:
                    conn = self._writer._conn  # aiosqlite runs _execute's function on this connection's thread
                    outcomes = await self._writer._execute(_run_group, conn, [fn for fn, _ in batch], self.path,
                                                           self._refusal_in)
            except BaseException as exc:
                error = self._unavailable(exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error if isinstance(error, Exception) else QmsError("the write was cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), (result, error) in zip(batch, outcomes):
                if future.done():
                    continue
                if error is not None:
                    future.set_exception(self._unavailable(error))
                else:
                    future.set_result(result)

    def _refusal_in(self, conn: sqlite3.Connection, exc: QuotaExceeded) -> None:
        """Write ``exc``'s ``quota.refused`` event in the open transaction (after the refused
        job was rolled back to its savepoint): it commits with the group."""
        conn.execute(INSERT_EVENT, self.event_row(*exc.refusal()))

    def _record_refusal(self, conn: sqlite3.Connection, exc: QuotaExceeded) -> None:
        """Commit ``exc``'s ``quota.refused`` event in a transaction of its own (writer thread,
        write lock held). If even that fails, the refusal still stands."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_EVENT, self.event_row(*exc.refusal()))
            conn.execute("COMMIT")
        except Exception as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            exc.add_note(f"the quota.refused event could not be written: {err}")

    async def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read on the reader connection and return all rows."""
        self._check_open()
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise Busy(f"the store {self.path} is busy; try again") from exc
            raise
