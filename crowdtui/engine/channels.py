"""Registered channels in the store: who owns which chats, their tokens (hashed) and health."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field

from qms.errors import InvalidInput, NotFound
from qms.names import OPERATOR


@dataclass(frozen=True)
class Channel:
    name: str
    platform: str
    callback_url: str
    prefixes: tuple[str, ...]
    registered_at: float
    last_ok_at: float | None
    failures: int
    state: str  # up | down
    callback_token: str = field(default="", repr=False)

    def owns(self, chat: str) -> bool:
        return any(chat.startswith(p) for p in self.prefixes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _row(r) -> Channel:
    return Channel(r["name"], r["platform"], r["callback_url"], tuple(json.loads(r["prefixes"])),
                   r["registered_at"], r["last_ok_at"], r["failures"], r["state"], r["callback_token"])


COLS = ("name, platform, callback_url, prefixes, registered_at, last_ok_at, failures, state, "
        "callback_token")


async def register_channel(store, *, name: str, platform: str, callback_url: str,
                           prefixes: list[str], now: float,
                           callback_token: str = "") -> tuple[Channel, str]:
    """Register (or re-register) a channel; returns it and a fresh bearer token.

    A prefix may belong to one live channel only: a prefix that overlaps another
    live channel's is refused.
    """
    token = secrets.token_urlsafe(32)
    if name == OPERATOR or await store.get_agent(name) is not None:
        # a channel's name is the sender of the messages it brings in: it must not pass for
        # the operator or an agent
        raise InvalidInput(f"channel name {name!r} is taken by {'the operator' if name == OPERATOR else 'an agent'}; "
                           "pick another name")
    async with store.write() as db:
        rows = await (await db.execute(
            f"SELECT {COLS} FROM engine_channels WHERE state = 'up' AND name != ?", (name,))).fetchall()
        for other in map(_row, rows):
            for p in prefixes:
                for q in other.prefixes:
                    if p.startswith(q) or q.startswith(p):
                        raise InvalidInput(
                            f"chat prefix {p!r} overlaps {q!r} of channel {other.name!r}; "
                            "pick prefixes no other channel owns"
                        )
        await db.execute(
            "INSERT INTO engine_channels (name, platform, callback_url, prefixes, token_hash, "
            "registered_at, last_ok_at, failures, state, callback_token) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'up', ?) "
            "ON CONFLICT(name) DO UPDATE SET platform = excluded.platform, "
            "callback_url = excluded.callback_url, prefixes = excluded.prefixes, "
            "token_hash = excluded.token_hash, registered_at = excluded.registered_at, "
            "last_ok_at = excluded.last_ok_at, failures = 0, state = 'up', "
            "callback_token = excluded.callback_token",
            (name, platform, callback_url, json.dumps(prefixes), hash_token(token), now, now,
             callback_token),
        )
        await store.append_event_in(db, "engine", "channel.registered", name,
                                    {"platform": platform, "callback": callback_url,
                                     "prefixes": prefixes})
    return Channel(name, platform, callback_url, tuple(prefixes), now, now, 0, "up", callback_token), token


async def deregister_channel(store, name: str, *, reason: str) -> None:
    async with store.write() as db:
        cur = await db.execute(
            "UPDATE engine_channels SET state = 'down' WHERE name = ? AND state = 'up' RETURNING name", (name,))
        if await cur.fetchone() is not None:
            await store.append_event_in(db, "engine", "channel.deregistered", name, {"reason": reason})


async def channel_for_token(store, token: str) -> Channel | None:
    rows = await store.query(
        f"SELECT {COLS} FROM engine_channels WHERE token_hash = ? AND state = 'up'",
        (hash_token(token),))
    return _row(rows[0]) if rows else None


async def list_channels(store, *, include_down: bool = False) -> list[Channel]:
    where = "" if include_down else "WHERE state = 'up'"
    rows = await store.query(f"SELECT {COLS} FROM engine_channels {where} ORDER BY name", ())
    return [_row(r) for r in rows]


async def channel_for_chat(store, chat: str) -> Channel | None:
    """The live channel that owns ``chat`` (longest prefix wins)."""
    best = None
    for ch in await list_channels(store):
        for p in ch.prefixes:
            if chat.startswith(p) and (best is None or len(p) > best[0]):
                best = (len(p), ch)
    return best[1] if best else None


async def record_health(store, name: str, ok: bool, *, now: float, max_failures: int) -> Channel:
    """Record one health poll; a channel failing ``max_failures`` times in a row goes down."""
    async with store.write() as db:
        if ok:
            cur = await db.execute(
                f"UPDATE engine_channels SET failures = 0, last_ok_at = ? WHERE name = ? RETURNING {COLS}",
                (now, name))
        else:
            cur = await db.execute(
                f"UPDATE engine_channels SET failures = failures + 1 WHERE name = ? RETURNING {COLS}",
                (name,))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no channel {name!r}")
        ch = _row(row)
        if not ok and ch.state == "up" and ch.failures >= max_failures:
            cur = await db.execute(
                f"UPDATE engine_channels SET state = 'down' WHERE name = ? RETURNING {COLS}", (name,))
            ch = _row(await cur.fetchone())
            await store.append_event_in(db, "engine", "channel.deregistered", name,
                                        {"failures": ch.failures})
    return ch
