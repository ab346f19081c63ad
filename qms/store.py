"""``Store``: the async API over a workspace's SQLite file.

One writer connection, on a thread of its own, and one reader connection for
``store.query`` (:mod:`qms.core`: every write, a ``write_sync`` job or a ``write()`` body,
goes through one queue and one committer). Several Store instances, in one process or
many, may open the same file: SQLite's busy timeout makes writers queue.

A change refused by a quota (``qms.quotas.QuotaExceeded``, raised inside the transaction)
rolls back like any error, and its ``quota.refused`` event is then committed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from qms.db import DEFAULT_BUSY_TIMEOUT, connect, is_busy, migrate
from qms.documents import DocumentsMixin
from qms.errors import Busy, QmsError
from qms.permissions import DEFAULT_TIMEOUT as DEFAULT_PERMISSION_TIMEOUT
from qms.registry import RegistryMixin
from qms.writer import Writer


class Store(DocumentsMixin, RegistryMixin):
    """Open with ``await Store.open(path)``; close with ``await store.close()``.

    Agents (``qms.registry``), messages (``qms.messages``), documents and their workflow
    (``qms.documents``), events (``qms.events``), on the core of ``qms.core``. Dispatch's
    and the hub's tables have modules of their own taking a Store (``qms.routes``,
    ``qms.scheduled_tasks``, ``qms.inbound``, ``qms.outbound``, ``qms.channels``,
    ``qms.tokens``, ``qms.secrets``, ``qms.permissions``).

    ``permission_timeout``: seconds a permission request waits for an answer (crowd.toml
    ``[approvals] timeout``, set by the workspace when it opens the store).
    """

    permission_timeout: float = DEFAULT_PERMISSION_TIMEOUT

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> "Store":
        """Open (creating the file and its folder if needed) and migrate the store."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QmsError(f"cannot create {path.parent} ({exc.strerror}); check the path and permissions") from exc
        try:
            reader = await connect(path, busy_timeout=busy_timeout)
        except sqlite3.Error as exc:
            raise QmsError(f"cannot open the store {path} ({exc}); check the path and permissions") from exc
        try:
            await migrate(reader)  # once, before anyone writes; the reader only reads afterwards
            writer = await Writer.open(path, busy_timeout)
        except sqlite3.Error as exc:
            await reader.close()
            if is_busy(exc):
                raise Busy(f"the store {path} stayed locked for {busy_timeout:.0f} s; try again") from exc
            raise QmsError(f"cannot open the store {path} ({exc}); is it a crowdtui database?") from exc
        except BaseException:
            await reader.close()
            raise
        return cls(path, writer, reader)

    async def __aenter__(self) -> "Store":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
