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
# A detail over MAX_DETAIL_BYTES is stored as a summary (see ``fit_detail``) named in at
# most this many bytes, so the summary always fits with room for the store's meta.
SUMMARY_BUDGET = 32 * 1024
_SMALL_VALUE_BYTES = 256  # a top-level value at most this long (as JSON) is kept whole
_SUMMARY_KEY_CHARS = 40
_NESTED_KEYS = 16  # a large object's first keys are listed with their sizes
INSERT_EVENT = "INSERT INTO events (at, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)"


def event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"], at=row["at"], actor=row["actor"], kind=row["kind"],
        subject=row["subject"], detail=json.loads(row["detail"]) if row["detail"] else {},
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _size_of(value: Any) -> Any:
    """How a value too large to keep is described: its size, and for an object its keys."""
    text = _json(value)
    if isinstance(value, dict):
        keys = {shown(str(k), _SUMMARY_KEY_CHARS): len(_json(v)) for k, v in list(value.items())[:_NESTED_KEYS]}
        return {"bytes": len(text), "keys": len(value), "sizes": keys}
    if isinstance(value, (list, tuple)):
        return {"bytes": len(text), "items": len(value)}
    return {"bytes": len(text)}


def fit_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """``detail`` if it fits in MAX_DETAIL_BYTES as JSON, else a summary that always fits.

    The summary keeps the small top-level entries as they are (``reason``, ``ok``...),
    gives the size (and an object's first keys with theirs) of each large one under
    ``truncated.sizes``, counts what it had no room for in ``truncated.more_keys``, and
    says how large the whole detail was: ``truncated.bytes``. Nothing is refused for its size.
    """
    size = len(_json(detail).encode())
    if size <= MAX_DETAIL_BYTES:
        return detail
    kept: dict[str, Any] = {}
    sizes: dict[str, Any] = {}
    budget, more = SUMMARY_BUDGET, 0
    for k, v in detail.items():
        key = shown(str(k), _SUMMARY_KEY_CHARS)
        text = _json(v)
        small = len(text) <= _SMALL_VALUE_BYTES
        entry = v if small else _size_of(v)
        cost = len(_json({key: entry})) + 2
        if cost > budget or key in kept or key in sizes or key == "truncated":
            more += 1
            continue
        budget -= cost
        (kept if small else sizes)[key] = entry
    kept["truncated"] = {"bytes": size, "sizes": sizes, "more_keys": more}
    return kept


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


def add_event(conn: sqlite3.Connection, store: "EventsMixin", actor: str, kind: str, subject: str,
              detail: dict[str, Any] | None = None) -> int:
    """Append one event inside a transaction on the writer's thread (a ``write_sync`` job);
    ``store`` checks it and adds its ``event_meta``. Returns the event's id."""
    return int(conn.execute(INSERT_EVENT, store.event_row(actor, kind, subject, detail)).lastrowid or 0)


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
        meta = self.event_meta or {}
        try:  # the meta first (kept in a summary) and winning
            text = _json(fit_detail({**meta, **dict(detail or {}), **meta}))
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidInput(f"event detail is not JSON-serialisable ({exc}); pass plain data") from exc
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
