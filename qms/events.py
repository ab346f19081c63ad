"""The ``events`` table: append-only change log; readers ask for rows after the last id they saw."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any, Iterable

import aiosqlite

from qms.errors import InvalidInput
from qms.models import Event
from qms.names import shown, validate_text

KIND_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
ACTOR_RE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,62}")
MAX_DETAIL_BYTES = 64 * 1024
INSERT_EVENT = "INSERT INTO events (at, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)"


def event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"], at=row["at"], actor=row["actor"], kind=row["kind"],
        subject=row["subject"], detail=json.loads(row["detail"]) if row["detail"] else {},
    )


def _kind_clause(kinds: Iterable[str]) -> tuple[str, list[str]]:
    """``kinds`` entries are exact kinds, or prefixes written ``doc.*`` / ``doc``."""
    parts: list[str] = []
    params: list[str] = []
    for k in kinds:
        if k.endswith(".*"):
            parts.append("kind LIKE ? ESCAPE '\\'")
            params.append(k[:-1].replace("_", "\\_").replace("%", "\\%") + "%")
        elif "." not in k:
            parts.append("kind LIKE ? ESCAPE '\\'")
            params.append(k.replace("_", "\\_").replace("%", "\\%") + ".%")
        else:
            parts.append("kind = ?")
            params.append(k)
    return "(" + " OR ".join(parts) + ")", params


class EventsMixin:
    """Appending and reading events. Needs ``write()``, ``query()`` and ``event_meta``."""

    event_meta: dict[str, Any]

    def event_row(
        self, actor: str, kind: str, subject: str, detail: dict[str, Any] | None = None,
    ) -> tuple[float, str, str, str, str]:
        """Check an event and return its row ``(at, actor, kind, subject, detail_json)``."""
        if not isinstance(actor, str) or not ACTOR_RE.fullmatch(actor):
            raise InvalidInput(f"invalid event actor '{shown(actor)}': use a lower-case name")
        if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
            raise InvalidInput(
                f"invalid event kind '{shown(kind)}': use dotted lower-case words like doc.created"
            )
        validate_text(subject, "event subject", max_chars=200, allow_empty=True)
        data = dict(detail or {})
        if self.event_meta:
            data.update(self.event_meta)
        try:
            text = json.dumps(data, sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"event detail is not JSON-serialisable ({exc}); pass plain data") from exc
        if len(text.encode()) > MAX_DETAIL_BYTES:
            raise InvalidInput(f"event detail is over {MAX_DETAIL_BYTES} bytes; keep details short")
        return (time.time(), actor, kind, subject, text)

    async def append_event_in(
        self, db: aiosqlite.Connection, actor: str, kind: str, subject: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append an event inside an open ``store.write()`` transaction; returns its id."""
        cur = await db.execute(INSERT_EVENT, self.event_row(actor, kind, subject, detail))
        return int(cur.lastrowid)

    async def append_event(
        self, actor: str, kind: str, subject: str, detail: dict[str, Any] | None = None
    ) -> int:
        """Append one event in its own transaction; returns its id."""
        async with self.write() as db:  # type: ignore[attr-defined]
            return await self.append_event_in(db, actor, kind, subject, detail)

    async def events_after(
        self, last_id: int = 0, *, limit: int = 500, kinds: Iterable[str] | str | None = None,
        subject: str | None = None, actor: str | None = None,
    ) -> list[Event]:
        """Events with id > ``last_id``, oldest first, at most ``limit``.

        ``kinds`` filters by exact kind (``doc.state``) or family (``doc.*``).
        """
        if isinstance(last_id, bool) or not isinstance(last_id, int) or last_id < 0:
            raise InvalidInput(f"last_id must be a non-negative integer, not '{shown(last_id)}'")
        _check_limit(limit)
        where = _event_filter(kinds, subject, actor)
        if where is None:
            return []
        sql = "SELECT * FROM events WHERE id > ?" + where[0] + " ORDER BY id LIMIT ?"
        params: list[Any] = [last_id, *where[1]]
        params.append(limit)
        rows = await self.query(sql, params)  # type: ignore[attr-defined]
        return [event_from_row(r) for r in rows]

    async def recent_events(
        self, *, limit: int = 50, kinds: Iterable[str] | str | None = None,
        subject: str | None = None, actor: str | None = None,
    ) -> list[Event]:
        """The newest ``limit`` events (matching the filters), oldest first."""
        _check_limit(limit)
        where = _event_filter(kinds, subject, actor)
        if where is None:
            return []
        sql = "SELECT * FROM events WHERE 1" + where[0] + " ORDER BY id DESC LIMIT ?"
        params: list[Any] = list(where[1])
        params.append(limit)
        rows = await self.query(sql, params)  # type: ignore[attr-defined]
        return [event_from_row(r) for r in reversed(rows)]

    async def last_event_id(self) -> int:
        """The newest event id (0 when there are none): where a new reader starts."""
        rows = await self.query("SELECT COALESCE(MAX(id), 0) FROM events")  # type: ignore[attr-defined]
        return int(rows[0][0])


def _check_limit(limit) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise InvalidInput(f"limit must be an integer from 1 to 100000, not '{shown(limit)}'")


def _event_filter(kinds, subject, actor) -> tuple[str, list[Any]] | None:
    """The ``AND …`` clauses and parameters for the readers' filters; None when
    ``kinds`` is empty (nothing can match)."""
    sql, params = "", []
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not kinds:
            return None
        clause, kp = _kind_clause(kinds)
        sql += " AND " + clause
        params += kp
    if subject is not None:
        sql += " AND subject = ?"
        params.append(subject)
    if actor is not None:
        sql += " AND actor = ?"
        params.append(actor)
    return sql, params
