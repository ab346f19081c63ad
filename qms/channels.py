"""Registered chat channels (``engine_channels``): who owns which chats, their tokens (hashed) and health.

A channel's bearer token is shown once, at registration; the store keeps its SHA-256.
A chat prefix belongs to one live channel only. Registration and going down are events
(``channel.registered``, ``channel.deregistered``) in the change's own transaction.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qms.errors import InvalidInput, NotFound
from qms.event_rows import add_event
from qms.names import DISPATCH, OPERATOR

if TYPE_CHECKING:
    from qms.store import Store

COLUMNS = "name, platform, callback_url, prefixes, registered_at, last_ok_at, failures, state, callback_token"


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


def _row(r: sqlite3.Row) -> Channel:
    return Channel(r["name"], r["platform"], r["callback_url"], tuple(json.loads(r["prefixes"])),
                   r["registered_at"], r["last_ok_at"], r["failures"], r["state"], r["callback_token"])


async def register_channel(store: "Store", *, name: str, platform: str, callback_url: str, prefixes: list[str],
                           now: float, callback_token: str = "", actor: str = DISPATCH) -> tuple[Channel, str]:
    """Register (or re-register) a channel; returns it and a fresh bearer token.

    A prefix that overlaps another live channel's is refused. A channel's name is the
    sender of the messages it brings in: it may not be the operator's or an agent's.
    """
    token = secrets.token_urlsafe(32)
    if name == OPERATOR or await store.get_agent(name) is not None:
        raise InvalidInput(f"channel name {name!r} is taken by {'the operator' if name == OPERATOR else 'an agent'}; "
                           "pick another name")

    def tx(conn: sqlite3.Connection) -> None:
        for other in map(_row, conn.execute(f"SELECT {COLUMNS} FROM engine_channels WHERE state = 'up' AND name != ?",
                                            (name,))):
            for p in prefixes:
                for q in other.prefixes:
                    if p.startswith(q) or q.startswith(p):
                        raise InvalidInput(f"chat prefix {p!r} overlaps {q!r} of channel {other.name!r}; "
                                           "pick prefixes no other channel owns")
        conn.execute(
            "INSERT INTO engine_channels (name, platform, callback_url, prefixes, token_hash, "
            "registered_at, last_ok_at, failures, state, callback_token) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'up', ?) "
            "ON CONFLICT(name) DO UPDATE SET platform = excluded.platform, "
            "callback_url = excluded.callback_url, prefixes = excluded.prefixes, "
            "token_hash = excluded.token_hash, registered_at = excluded.registered_at, "
            "last_ok_at = excluded.last_ok_at, failures = 0, state = 'up', "
            "callback_token = excluded.callback_token",
            (name, platform, callback_url, json.dumps(prefixes), hash_token(token), now, now, callback_token))
        add_event(conn, store, actor, "channel.registered", name,
                  {"platform": platform, "callback": callback_url, "prefixes": prefixes})

    await store.write_sync(tx)
    return Channel(name, platform, callback_url, tuple(prefixes), now, now, 0, "up", callback_token), token


async def deregister_channel(store: "Store", name: str, *, reason: str, actor: str = DISPATCH) -> bool:
    """Take a live channel down; False when it was not up."""

    def tx(conn: sqlite3.Connection) -> bool:
        if conn.execute("UPDATE engine_channels SET state = 'down' WHERE name = ? AND state = 'up' RETURNING name",
                        (name,)).fetchone() is None:
            return False
        add_event(conn, store, actor, "channel.deregistered", name, {"reason": reason})
        return True

    return await store.write_sync(tx)


async def channel_for_token(store: "Store", token: str) -> Channel | None:
    rows = await store.query(f"SELECT {COLUMNS} FROM engine_channels WHERE token_hash = ? AND state = 'up'",
                             (hash_token(token),))
    return _row(rows[0]) if rows else None


async def list_channels(store: "Store", *, include_down: bool = False) -> list[Channel]:
    where = "" if include_down else "WHERE state = 'up'"
    return [_row(r) for r in await store.query(f"SELECT {COLUMNS} FROM engine_channels {where} ORDER BY name")]


async def channel_for_chat(store: "Store", chat: str) -> Channel | None:
    """The live channel that owns ``chat`` (longest prefix wins)."""
    best: tuple[int, Channel] | None = None
    for ch in await list_channels(store):
        for p in ch.prefixes:
            if chat.startswith(p) and (best is None or len(p) > best[0]):
                best = (len(p), ch)
    return best[1] if best else None


async def record_health(store: "Store", name: str, ok: bool, *, now: float, max_failures: int,
                        actor: str = DISPATCH) -> Channel:
    """Record one health poll; a channel failing ``max_failures`` times in a row goes down."""

    def tx(conn: sqlite3.Connection) -> Channel:
        if ok:
            row = conn.execute(f"UPDATE engine_channels SET failures = 0, last_ok_at = ? WHERE name = ? "
                               f"RETURNING {COLUMNS}", (now, name)).fetchone()
        else:
            row = conn.execute(f"UPDATE engine_channels SET failures = failures + 1 WHERE name = ? "
                               f"RETURNING {COLUMNS}", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no channel {name!r}")
        ch = _row(row)
        if not ok and ch.state == "up" and ch.failures >= max_failures:
            ch = _row(conn.execute(f"UPDATE engine_channels SET state = 'down' WHERE name = ? RETURNING {COLUMNS}",
                                   (name,)).fetchone())
            add_event(conn, store, actor, "channel.deregistered", name, {"failures": ch.failures})
        return ch

    return await store.write_sync(tx)
