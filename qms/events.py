"""The ``events`` table: append-only change log; readers ask for rows after the last id they saw."""

from __future__ import annotations

from typing import Any, Iterable

from qms.core import StoreCore
from qms.errors import InvalidInput
from qms.event_rows import MAX_DETAIL_BYTES, event_from_row, fit_detail  # noqa: F401  (the size cap, as before)
from qms.models import Event
from qms.names import shown


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


class EventsMixin(StoreCore):
    """Reading events (appending is the core's: ``append_event_in``, ``append_event``)."""

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
        rows = await self.query(sql, params)
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
        rows = await self.query(sql, params)
        return [event_from_row(r) for r in reversed(rows)]

    async def last_event_id(self) -> int:
        """The newest event id (0 when there are none): where a new reader starts."""
        rows = await self.query("SELECT COALESCE(MAX(id), 0) FROM events")
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
