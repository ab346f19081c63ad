"""The outbound chat queue (``engine_outbound``): texts waiting for the channel that owns their chat.

A row is tried when due; a failure pushes it back with a growing delay; after
``max_attempts`` (a ``typing`` notice: after one) it is marked failed, kept with the last
error for the operator. Each reply is a ``chat.reply`` event and each give-up a
``chat.undelivered`` event, in the same transaction as the row's change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qms.event_rows import add_event
from qms.names import DISPATCH

if TYPE_CHECKING:
    from qms.store import Store

MAX_ATTEMPTS = 8
BASE_DELAY = 0.5  # seconds before the first retry; doubled each time
MAX_DELAY = 60.0
COLUMNS = "id, chat, kind, text, reply_to, agent, attempts, state, last_error"


@dataclass(frozen=True)
class Outbound:
    id: int
    chat: str
    kind: str  # send | typing
    text: str
    reply_to: str | None
    agent: str
    attempts: int
    state: str  # pending | sent | failed
    last_error: str


def _row(r: sqlite3.Row) -> Outbound:
    return Outbound(r["id"], r["chat"], r["kind"], r["text"], r["reply_to"], r["agent"],
                    r["attempts"], r["state"], r["last_error"])


def enqueue_tx(conn: sqlite3.Connection, store: "Store", *, chat: str, text: str, agent: str, now: float,
               kind: str = "send", reply_to: str | None = None) -> int:
    """Queue one item inside an open transaction; returns its id."""
    oid = conn.execute(
        "INSERT INTO engine_outbound (chat, kind, text, reply_to, agent, created_at, next_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id", (chat, kind, text, reply_to, agent, now, now)).fetchone()[0]
    if kind == "send":
        add_event(conn, store, agent, "chat.reply", chat, {"outbound": oid, "size": len(text)})
    return oid


async def enqueue(store: "Store", *, chat: str, text: str, agent: str, now: float, kind: str = "send",
                  reply_to: str | None = None) -> int:
    return await store.write_sync(lambda conn: enqueue_tx(conn, store, chat=chat, text=text, agent=agent, now=now,
                                                          kind=kind, reply_to=reply_to))


async def due(store: "Store", now: float, limit: int = 100) -> list[Outbound]:
    """Items to try now, oldest first; an item waits while an older one for its chat waits."""
    rows = await store.query(
        f"SELECT {COLUMNS} FROM engine_outbound o WHERE state = 'pending' AND next_at <= ? "
        "AND NOT EXISTS (SELECT 1 FROM engine_outbound p WHERE p.chat = o.chat AND p.state = 'pending' "
        "AND p.id < o.id AND p.next_at > ?) ORDER BY id LIMIT ?", (now, now, limit))
    return [_row(r) for r in rows]


async def next_due_at(store: "Store") -> float | None:
    rows = await store.query("SELECT MIN(next_at) FROM engine_outbound WHERE state = 'pending'")
    return rows[0][0] if rows else None


async def mark_sent(store: "Store", oid: int, channel: str, now: float) -> None:
    await store.write_sync(lambda conn: conn.execute(
        "UPDATE engine_outbound SET state = 'sent', sent_at = ?, channel = ?, attempts = attempts + 1 WHERE id = ?",
        (now, channel, oid)))


async def mark_failed(store: "Store", oid: int, error: str, now: float, *, max_attempts: int = MAX_ATTEMPTS,
                      actor: str = DISPATCH) -> str:
    """Record a failed try; returns the new state (pending, or failed when out of tries)."""

    def tx(conn: sqlite3.Connection) -> str:
        row = conn.execute("UPDATE engine_outbound SET attempts = attempts + 1, last_error = ? WHERE id = ? "
                           "RETURNING attempts, kind, chat, agent", (error[:500], oid)).fetchone()
        attempts = row["attempts"]
        if attempts >= max_attempts or row["kind"] == "typing":
            conn.execute("UPDATE engine_outbound SET state = 'failed' WHERE id = ?", (oid,))
            add_event(conn, store, actor, "chat.undelivered", row["chat"],
                      {"outbound": oid, "attempts": attempts, "error": error[:200]})
            return "failed"
        delay = min(MAX_DELAY, BASE_DELAY * 2 ** (attempts - 1))
        conn.execute("UPDATE engine_outbound SET next_at = ? WHERE id = ?", (now + delay, oid))
        return "pending"

    return await store.write_sync(tx)


async def list_outbound(store: "Store", *, chat: str | None = None) -> list[Outbound]:
    if chat is None:
        rows = await store.query(f"SELECT {COLUMNS} FROM engine_outbound ORDER BY id")
    else:
        rows = await store.query(f"SELECT {COLUMNS} FROM engine_outbound WHERE chat = ? ORDER BY id", (chat,))
    return [_row(r) for r in rows]
