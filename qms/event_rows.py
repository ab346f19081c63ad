"""Event rows: checking an event and fitting its detail, before it is appended.

Pure functions (no store): :mod:`qms.core` and the area modules append with them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any, Protocol

from qms.errors import InvalidInput
from qms.models import Event
from qms.names import shown, validate_text

class EventSource(Protocol):
    """What checks an event and adds its meta: the store (``StoreCore.event_row``)."""

    def event_row(self, actor: str, kind: str, subject: str,
                  detail: dict[str, Any] | None = None) -> tuple[float, str, str, str, str]: ...

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
INSERT_EVENTS = "INSERT INTO events (at, actor, kind, subject, detail) VALUES "


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
    text = _json(detail)
    return detail if len(text) <= MAX_DETAIL_BYTES else _summary(detail, len(text))


def detail_json(detail: dict[str, Any]) -> str:
    """:func:`fit_detail` as the JSON text stored (the detail is encoded once when it fits;
    ``json.dumps`` writes ASCII, so its length is its size in bytes)."""
    text = _json(detail)
    return text if len(text) <= MAX_DETAIL_BYTES else _json(_summary(detail, len(text)))


def _summary(detail: dict[str, Any], size: int) -> dict[str, Any]:
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



def make_event_row(meta: dict[str, Any] | None, actor: str, kind: str, subject: str,
                   detail: dict[str, Any] | None = None) -> tuple[float, str, str, str, str]:
    """Check an event and return its row ``(at, actor, kind, subject, detail_json)``;
    ``meta`` is merged into the detail (kept in a summary, and winning)."""
    if not isinstance(actor, str) or not ACTOR_RE.fullmatch(actor):
        raise InvalidInput(f"invalid event actor '{shown(actor)}': use a lower-case name")
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        raise InvalidInput(
            f"invalid event kind '{shown(kind)}': use dotted lower-case words like doc.created"
        )
    validate_text(subject, "event subject", max_chars=200, allow_empty=True)
    meta = meta or {}
    try:
        text = detail_json({**meta, **dict(detail or {}), **meta})
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"event detail is not JSON-serialisable ({exc}); pass plain data") from exc
    return (time.time(), actor, kind, subject, text)


def add_event(conn: sqlite3.Connection, store: EventSource, actor: str, kind: str, subject: str,
              detail: dict[str, Any] | None = None) -> int:
    """Append one event inside a transaction on the writer's thread (a ``write_sync`` job);
    ``store`` checks it and adds its ``event_meta``. Returns the event's id."""
    return int(conn.execute(INSERT_EVENT, store.event_row(actor, kind, subject, detail)).lastrowid or 0)


EVENTS_PER_STATEMENT = 500  # 5 values each: well under SQLite's 32,766 bound parameters


def add_events(conn: sqlite3.Connection, store: EventSource,
               events: list[tuple[str, str, str, dict[str, Any] | None]]) -> None:
    """Append ``(actor, kind, subject, detail)`` events in order, checked as :func:`add_event`
    checks one, with one INSERT per 500 (a batch's audit trail in one statement)."""
    rows = [store.event_row(*e) for e in events]
    for i in range(0, len(rows), EVENTS_PER_STATEMENT):
        part = rows[i:i + EVENTS_PER_STATEMENT]
        conn.execute(INSERT_EVENTS + ",".join(["(?, ?, ?, ?, ?)"] * len(part)), [v for row in part for v in row])
