"""The store's core: its two connections, its one write path, and appending events.

One writer connection on a thread of its own (:class:`qms.writer.Writer`) and one reader
connection for ``query``. Every write goes through ONE queue, served by one committer task
in arrival order:

- ``write_sync(fn)`` jobs (plain functions on the writer's connection) that arrive together
  share one transaction (group commit: one thread hop and one fsync for the group), each in
  its own savepoint, so a job that raises is rolled back alone;
- ``async with write() as db`` bodies get a ``BEGIN IMMEDIATE`` transaction of their own,
  committed when the body ends, rolled back if it raises.

Nobody is answered before the commit that holds their write. A change refused by a quota
(``qms.quotas.QuotaExceeded``) is rolled back and its ``quota.refused`` event committed; a
disk or file that refuses writes is one ``StoreUnavailable`` line. The store's mixins
(``qms.events``, ``qms.registry``, ``qms.messages``, ``qms.documents``) build on this class.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence, TypeVar

import aiosqlite

from qms.db import is_busy, unavailable
from qms.errors import Busy, QmsError
from qms.event_rows import INSERT_EVENT, make_event_row
from qms.quotas import QuotaExceeded, Quotas
from qms.writer import Gathering, Transaction, Writer

T = TypeVar("T")
MAX_GROUP = 256  # jobs sharing one transaction at most
Job = Callable[[sqlite3.Connection], Any]


def _begin(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Busy(f"the store {path} is locked by another writer for too long; try again") from exc
        raise


def _commit(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _run_group(conn: sqlite3.Connection, jobs: list[Job], path: Path,
               refused: Callable[[sqlite3.Connection, QuotaExceeded], None]) -> list[tuple[Any, BaseException | None]]:
    """One transaction for ``jobs`` (on the writer's thread): each in its own savepoint.
    A job refused by a quota leaves only its ``quota.refused`` event (``refused``)."""
    _begin(conn, path)
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
        _rollback(conn)
        raise
    return outcomes


def _run_taken(conn: sqlite3.Connection, group: "Gathering[tuple[Job, asyncio.Future]]", path: Path,
               refused: Callable[[sqlite3.Connection, QuotaExceeded], None]) -> list[tuple[Any, BaseException | None]]:
    return _run_group(conn, [fn for fn, _ in group.take()], path, refused)


class _Body:
    """A ``write()`` body's place in the queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.begun: asyncio.Future[None] = loop.create_future()  # BEGIN done (or its error)
        self.ended: asyncio.Future[BaseException | None] = loop.create_future()  # the body's outcome
        self.settled: asyncio.Future[None] = loop.create_future()  # committed / rolled back

    def end(self, outcome: BaseException | None) -> None:
        if not self.ended.done():
            self.ended.set_result(outcome)


Pending = tuple[Job, "asyncio.Future[Any]"] | _Body


class StoreCore:
    """Connections, the write queue, reads and appending events. ``Store`` adds the rest.

    ``event_meta`` is merged into the detail of every event this instance writes
    (the CLI sets ``{"by_operator": True}`` when the operator acts ``--as`` an agent).
    ``quotas`` are the per-agent limits (``qms.quotas``); hosts set them from crowd.toml.
    """

    def __init__(self, path: Path, writer: Writer, reader: aiosqlite.Connection):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._pending: list[Pending] = []
        self._committer: asyncio.Task | None = None
        self._closed = False
        self.event_meta: dict[str, Any] = {}
        self.quotas = Quotas()
        self._near: tuple[int, sqlite3.Connection] | None = None  # (thread, connection) of query_small
        self._forming: Gathering | None = None  # a group queued on the writer's thread, still taking jobs
        self._groups: set[asyncio.Future] = set()  # groups queued or running on the writer's thread

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._near is not None:
            self._near[1].close()
            self._near = None
        if self._committer is not None and not self._committer.done():
            await asyncio.wait([self._committer])  # what was accepted is committed (or failed) first
        if self._groups:
            await asyncio.wait(set(self._groups))
        await self._writer.close()
        await self._reader.close()

    def _check_open(self) -> None:
        if self._closed:
            raise QmsError("the store is closed; open it again with Store.open(path)")

    def _unavailable(self, exc: BaseException) -> BaseException:
        """``exc``, or the store's one-line StoreUnavailable when the disk or file refused."""
        mapped = unavailable(exc, self.path)
        if mapped is None or mapped is exc:
            return exc
        mapped.__cause__ = exc
        return mapped

    # --- the one write path ------------------------------------------------------------

    def _enqueue(self, item: Pending) -> None:
        if (not isinstance(item, _Body) and not self._pending and self._forming is not None
                and self._forming.add(item)):
            return
        self._pending.append(item)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._serve(), name="qms-committer")

    async def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a ``BEGIN IMMEDIATE`` transaction on the writer's own thread and
        return its result once that transaction has committed (group commit).

        Writes that arrive while a transaction commits wait together and share the next
        one. Each job runs inside its own savepoint, so a job that raises is rolled back
        alone and its caller gets the error; the others commit. ``fn`` must not touch the
        event loop.
        """
        return await asyncio.shield(self.submit(fn))

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> "asyncio.Future[T]":
        """:meth:`write_sync` without the wait: ``fn`` is in the queue when this returns; the
        future holds its result once committed. (So a caller can queue its next write before
        it acts on this one's result, and the writer's thread does not wait for the loop.)"""
        self._check_open()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._enqueue((fn, future))
        return future

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A ``BEGIN IMMEDIATE`` transaction of its own, in turn with every other write:
        committed when the body ends, rolled back on any error. Do not nest, and do not
        await another write inside (it would wait for this one)."""
        self._check_open()
        body = _Body(asyncio.get_running_loop())
        self._enqueue(body)
        try:
            await asyncio.shield(body.begun)
        except BaseException as exc:
            body.end(exc)  # not begun yet: the committer skips it; begun: it rolls back
            raise
        try:
            yield Transaction(self._writer)
        except BaseException as exc:
            body.end(exc)
            try:
                await asyncio.shield(body.settled)
            except BaseException:
                pass
            if isinstance(exc, QuotaExceeded):
                raise
            raise self._unavailable(exc)
        body.end(None)
        await asyncio.shield(body.settled)

    async def _serve(self) -> None:
        """The committer: takes the queue in order, a group of jobs or one body at a time.
        At most two groups are on the writer's thread at once (one running, one taking jobs);
        a body waits until they are done and has the writer to itself."""
        while self._pending:
            head = self._pending[0]
            if isinstance(head, _Body):
                self._forming = None
                if self._groups:
                    await asyncio.wait(set(self._groups))
                self._pending.pop(0)
                await self._run_body(head)
                continue
            batch: list[tuple[Job, asyncio.Future]] = []
            while self._pending and len(batch) < MAX_GROUP:
                item = self._pending[0]
                if isinstance(item, _Body):
                    break
                batch.append(item)
                self._pending.pop(0)
            self._submit_group(batch)
            while len(self._groups) >= 2:
                await asyncio.wait(set(self._groups), return_when=asyncio.FIRST_COMPLETED)

    def _submit_group(self, items: list[tuple[Job, asyncio.Future]]) -> None:
        group = self._forming = Gathering(items, MAX_GROUP)
        done = self._writer.submit(_run_taken, group, self.path, self._refusal_in)
        self._groups.add(done)
        done.add_done_callback(lambda d: self._settle(group, d))

    def _settle(self, group: Gathering, done: asyncio.Future) -> None:
        """A group's transaction ended (on the loop's thread): answer each of its jobs."""
        self._groups.discard(done)
        if self._forming is group:
            self._forming = None
        if done.cancelled() or done.exception() is not None:
            exc = None if done.cancelled() else done.exception()
            error = self._unavailable(exc) if isinstance(exc, Exception) else QmsError("the write was cancelled")
            for _, future in group.items:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), (result, err) in zip(group.items, done.result()):
            if future.done():
                continue
            if err is not None:
                future.set_exception(self._unavailable(err))
            else:
                future.set_result(result)

    async def _run_body(self, body: _Body) -> None:
        if body.ended.done():  # the body gave up before its turn
            body.settled.set_result(None)
            return
        try:
            await self._writer.run(_begin, self.path)
        except Exception as exc:
            body.begun.set_exception(self._unavailable(exc))
            body.settled.set_result(None)
            return
        body.begun.set_result(None)
        outcome = await body.ended
        try:
            if outcome is None:
                await self._writer.run(_commit)
            else:
                await self._writer.run(_rollback)
                if isinstance(outcome, QuotaExceeded):
                    await self._writer.run(self._record_refusal, outcome)
        except Exception as exc:
            body.settled.set_exception(self._unavailable(exc))
            return
        body.settled.set_result(None)

    def _refusal_in(self, conn: sqlite3.Connection, exc: QuotaExceeded) -> None:
        """Write ``exc``'s ``quota.refused`` event in the open transaction (after the refused
        job was rolled back to its savepoint): it commits with the group."""
        conn.execute(INSERT_EVENT, self.event_row(*exc.refusal()))

    def _record_refusal(self, conn: sqlite3.Connection, exc: QuotaExceeded) -> None:
        """Commit ``exc``'s ``quota.refused`` event in a transaction of its own (writer thread).
        If even that fails, the refusal still stands."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_EVENT, self.event_row(*exc.refusal()))
            conn.execute("COMMIT")
        except Exception as err:
            _rollback(conn)
            exc.add_note(f"the quota.refused event could not be written: {err}")

    # --- reads -----------------------------------------------------------------------

    async def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read on the reader connection and return all rows."""
        self._check_open()
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise Busy(f"the store {self.path} is busy; try again") from exc
            raise

    async def query_small(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """A small read (an index lookup with a LIMIT) on the calling thread, without the hop to the
        reader's thread (about half of a hub call's wait: a queue, a thread wake and a wake of the
        loop back). It holds the event loop while SQLite works, so it is for bounded reads only.
        In WAL mode a reader does not wait for writers; if SQLite still says busy, or the store is
        used from another thread than the first caller's, the read goes the usual way (``query``)."""
        self._check_open()
        near = self._near
        if near is None:
            try:
                conn = sqlite3.connect(str(self.path), timeout=0, isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA query_only=1")
            except sqlite3.Error:
                return await self.query(sql, params)
            near = self._near = (threading.get_ident(), conn)
        if near[0] != threading.get_ident():
            return await self.query(sql, params)
        try:
            return near[1].execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                return await self.query(sql, params)
            raise

    # --- appending events ------------------------------------------------------------

    def event_row(self, actor: str, kind: str, subject: str,
                  detail: dict[str, Any] | None = None) -> tuple[float, str, str, str, str]:
        """Check an event and return its row ``(at, actor, kind, subject, detail_json)``."""
        return make_event_row(self.event_meta, actor, kind, subject, detail)

    async def append_event_in(self, db: Transaction, actor: str, kind: str, subject: str,
                              detail: dict[str, Any] | None = None) -> int:
        """Append an event inside an open ``store.write()`` transaction; returns its id."""
        cur = await db.execute(INSERT_EVENT, self.event_row(actor, kind, subject, detail))
        return int(cur.lastrowid or 0)

    async def append_event(self, actor: str, kind: str, subject: str,
                           detail: dict[str, Any] | None = None) -> int:
        """Append one event in its own transaction; returns its id."""
        row = self.event_row(actor, kind, subject, detail)
        return await self.write_sync(lambda conn: int(conn.execute(INSERT_EVENT, row).lastrowid or 0))
