"""The outbound queue: texts waiting for the channel that owns their chat.

A row is tried when due; a failure pushes it back with a growing delay; after
``max_attempts`` it is marked failed (kept, with the last error, for the operator).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_ATTEMPTS = 8
BASE_DELAY = 0.5
MAX_DELAY = 60.0


@dataclass(frozen=True)
class Outbound:
    id: int
    chat: str
    kind: str  # send | typing
    text: str
    reply_to: str | None
    agent: str
    attempts: int
    state: str
    last_error: str


COLS = "id, chat, kind, text, reply_to, agent, attempts, state, last_error"


def _row(r) -> Outbound:
    return Outbound(r["id"], r["chat"], r["kind"], r["text"], r["reply_to"], r["agent"],
                    r["attempts"], r["state"], r["last_error"])


async def enqueue_in(db, store, *, chat: str, text: str, agent: str, now: float,
                     kind: str = "send", reply_to: str | None = None) -> int:
    cur = await db.execute(
        "INSERT INTO engine_outbound (chat, kind, text, reply_to, agent, created_at, next_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (chat, kind, text, reply_to, agent, now, now))
    oid = (await cur.fetchone())[0]
    if kind == "send":
        await store.append_event_in(db, agent, "chat.reply", chat, {"outbound": oid, "size": len(text)})
    return oid


async def enqueue(store, **kw) -> int:
    async with store.write() as db:
        return await enqueue_in(db, store, **kw)


async def due(store, now: float, limit: int = 100) -> list[Outbound]:
    """Items to try now, oldest first; an item waits while an older one for its chat waits."""
    rows = await store.query(
        f"SELECT {COLS} FROM engine_outbound o WHERE state = 'pending' AND next_at <= ? "
        "AND NOT EXISTS (SELECT 1 FROM engine_outbound p WHERE p.chat = o.chat AND p.state = 'pending' "
        "AND p.id < o.id AND p.next_at > ?) ORDER BY id LIMIT ?", (now, now, limit))
    return [_row(r) for r in rows]


async def next_due_at(store) -> float | None:
    rows = await store.query(
        "SELECT MIN(next_at) FROM engine_outbound WHERE state = 'pending'", ())
    return rows[0][0] if rows else None


async def mark_sent(store, oid: int, channel: str, now: float) -> None:
    async with store.write() as db:
        await db.execute(
            "UPDATE engine_outbound SET state = 'sent', sent_at = ?, channel = ?, "
            "attempts = attempts + 1 WHERE id = ?", (now, channel, oid))


async def mark_failed(store, oid: int, error: str, now: float, *,
                      max_attempts: int = MAX_ATTEMPTS) -> str:
    """Record a failed try; returns the new state (pending, or failed when out of tries)."""
    async with store.write() as db:
        cur = await db.execute(
            "UPDATE engine_outbound SET attempts = attempts + 1, last_error = ? WHERE id = ? "
            "RETURNING attempts, kind, chat, agent", (error[:500], oid))
        row = await cur.fetchone()
        attempts = row["attempts"]
        if attempts >= max_attempts or row["kind"] == "typing":
            await db.execute("UPDATE engine_outbound SET state = 'failed' WHERE id = ?", (oid,))
            await store.append_event_in(db, "engine", "chat.undelivered", row["chat"],
                                        {"outbound": oid, "attempts": attempts, "error": error[:200]})
            return "failed"
        delay = min(MAX_DELAY, BASE_DELAY * 2 ** (attempts - 1))
        await db.execute("UPDATE engine_outbound SET next_at = ? WHERE id = ?", (now + delay, oid))
        return "pending"


async def list_outbound(store, *, chat: str | None = None) -> list[Outbound]:
    if chat is None:
        rows = await store.query(f"SELECT {COLS} FROM engine_outbound ORDER BY id", ())
    else:
        rows = await store.query(f"SELECT {COLS} FROM engine_outbound WHERE chat = ? ORDER BY id", (chat,))
    return [_row(r) for r in rows]
