"""Inbound chat messages (``engine_inbound``) and the chat state routing keeps
(``engine_sticky``: a chat's chosen agent; ``engine_chat_agents``: who a chat reached).

A message is stored once per (channel, message id), in arrival order (``seq``); the
router takes rows with status ``new`` and, in ONE transaction per row or batch, delivers
and marks them (``routed | held | command | refused``), so a crash leaves every stored
message either untouched or routed, never both. Held messages (an unknown sender) wait
for the operator: approving adds a route for the chat first in the table and puts them
back to ``new``; denying keeps them as ``denied``. Both are events (``onboard.approved``,
``onboard.denied``) in the same transaction.

The ``*_tx`` functions run inside an open transaction on the writer's thread (a
``Store.write_sync`` job), so the router can combine them with a delivery.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from qms.errors import NotFound
from qms.event_rows import add_event
from qms.routes import add_route_tx

if TYPE_CHECKING:
    from qms.store import Store

COLUMNS = ("seq, channel, msg_id, chat, platform, room, sender, sender_name, text, reply_to, "
           "attachments, received_at, status, agent, detail")
CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class Arrival:
    """A checked message as a channel brought it in (what :func:`store_arrivals` keeps)."""
    channel: str
    platform: str
    msg_id: str
    chat: str
    text: str
    sender: str | None = None
    sender_name: str | None = None
    room: str | None = None
    sent_at: str | None = None
    reply_to: str | None = None
    attachments: tuple[dict, ...] = ()


@dataclass(frozen=True)
class StoredInbound:
    seq: int
    channel: str
    msg_id: str
    chat: str
    platform: str
    room: str | None
    sender: str | None
    sender_name: str | None
    text: str
    reply_to: str | None
    attachments: list
    received_at: float
    status: str  # new | routed | held | command | refused | denied
    agent: str | None
    detail: str


@dataclass(frozen=True)
class Hold:
    """A chat whose messages wait for the operator (an unknown sender)."""
    chat: str
    channel: str
    platform: str
    senders: tuple[str, ...]
    count: int
    first_at: float
    last_text: str


def _stored(r: sqlite3.Row) -> StoredInbound:
    return StoredInbound(r["seq"], r["channel"], r["msg_id"], r["chat"], r["platform"], r["room"],
                         r["sender"], r["sender_name"], r["text"], r["reply_to"],
                         json.loads(r["attachments"]), r["received_at"], r["status"], r["agent"], r["detail"])


def _marks(n: int) -> str:
    return ",".join("?" * n)


# --- arriving -------------------------------------------------------------------------

async def store_arrivals(store: "Store", items: Iterable[Arrival], *, now: float) -> list[tuple[int, bool]]:
    """Store each message once per (channel, msg_id), all in one transaction (one fsync);
    returns (seq, newly stored) for each, in order."""
    items = list(items)
    return await store.write_sync(lambda conn: store_arrivals_tx(conn, items, now))


def store_arrivals_tx(conn: sqlite3.Connection, items: list[Arrival], now: float) -> list[tuple[int, bool]]:
    """:func:`store_arrivals` inside an open transaction (the writer's thread): one look for the
    ids already stored and one INSERT for the rest, per 500. A message that came twice in
    ``items`` is stored once; the second is answered as a duplicate."""
    seqs = _stored_seqs_tx(conn, items)
    fresh: list[Arrival] = []
    new: list[bool] = []
    for a in items:
        new.append((a.channel, a.msg_id) not in seqs)
        if new[-1]:
            seqs[(a.channel, a.msg_id)] = 0  # taken by this call: a second copy is a duplicate
            fresh.append(a)
    for i in range(0, len(fresh), CHUNK // 2):
        part = fresh[i:i + CHUNK // 2]
        rows = conn.execute(
            "INSERT INTO engine_inbound (channel, msg_id, chat, platform, room, sender, sender_name, "
            "text, sent_at, reply_to, attachments, received_at) VALUES "
            + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * len(part)) + " RETURNING seq, channel, msg_id",
            [v for a in part for v in (a.channel, a.msg_id, a.chat, a.platform, a.room, a.sender, a.sender_name,
                                       a.text, a.sent_at, a.reply_to, json.dumps(list(a.attachments)), now)]
        ).fetchall()
        seqs.update({(r[1], r[2]): r[0] for r in rows})
    return [(seqs[(a.channel, a.msg_id)], is_new) for a, is_new in zip(items, new)]


def _stored_seqs_tx(conn: sqlite3.Connection, items: list[Arrival]) -> dict[tuple[str, str], int]:
    """(channel, msg_id) -> seq of those of ``items`` already stored."""
    by_channel: dict[str, list[str]] = {}
    for a in items:
        by_channel.setdefault(a.channel, []).append(a.msg_id)
    found: dict[tuple[str, str], int] = {}
    for channel, ids in by_channel.items():
        ids = sorted(set(ids))
        for i in range(0, len(ids), CHUNK):
            part = ids[i:i + CHUNK]
            found.update({(channel, r[1]): r[0] for r in conn.execute(
                f"SELECT seq, msg_id FROM engine_inbound WHERE channel = ? AND msg_id IN ({_marks(len(part))})",
                [channel, *part])})
    return found


def stored_arrival(a: Arrival, seq: int, now: float) -> StoredInbound:
    """The row :func:`store_arrivals_tx` just stored for ``a`` (status ``new``)."""
    return StoredInbound(seq, a.channel, a.msg_id, a.chat, a.platform, a.room, a.sender, a.sender_name, a.text,
                         a.reply_to, list(a.attachments), now, "new", None, "")


def any_new_tx(conn: sqlite3.Connection) -> bool:
    """Whether some stored message still waits for the router."""
    return conn.execute("SELECT 1 FROM engine_inbound WHERE status = 'new' LIMIT 1").fetchone() is not None


async def get_inbound(store: "Store", channel: str, msg_id: str) -> StoredInbound | None:
    rows = await store.query(f"SELECT {COLUMNS} FROM engine_inbound WHERE channel = ? AND msg_id = ?",
                             (channel, msg_id))
    return _stored(rows[0]) if rows else None


async def list_inbound(store: "Store", *, status: str | None = None, chat: str | None = None) -> list[StoredInbound]:
    sql, params = f"SELECT {COLUMNS} FROM engine_inbound WHERE 1=1", []
    if status:
        sql += " AND status = ?"
        params.append(status)
    if chat:
        sql += " AND chat = ?"
        params.append(chat)
    return [_stored(r) for r in await store.query(sql + " ORDER BY seq", params)]


async def last_inbound(store: "Store") -> dict[str, StoredInbound]:
    """Each channel's newest inbound message: channel name -> message."""
    rows = await store.query(
        f"SELECT {COLUMNS} FROM engine_inbound WHERE seq IN"
        " (SELECT MAX(seq) FROM engine_inbound GROUP BY channel)")
    return {r["channel"]: _stored(r) for r in rows}


async def new_inbound(store: "Store", limit: int = 200) -> list[StoredInbound]:
    """The oldest ``limit`` messages not yet routed, in arrival order."""
    rows = await store.query(f"SELECT {COLUMNS} FROM engine_inbound WHERE status = 'new' ORDER BY seq LIMIT ?",
                             (limit,))
    return [_stored(r) for r in rows]


# --- chat state -----------------------------------------------------------------------

async def stickies(store: "Store", chats: Iterable[str]) -> dict[str, str]:
    """The sticky agent of each of ``chats`` that has one."""
    chats_l = sorted(set(chats))
    out: dict[str, str] = {}
    for i in range(0, len(chats_l), CHUNK):
        part = chats_l[i:i + CHUNK]
        rows = await store.query(_STICKY_SQL.format(_marks(len(part))), part)
        out.update({r[0]: r[1] for r in rows})
    return out


def stickies_tx(conn: sqlite3.Connection, chats: Iterable[str]) -> dict[str, str]:
    """:func:`stickies` read inside an open transaction (what it holds now)."""
    chats_l = sorted(set(chats))
    out: dict[str, str] = {}
    for i in range(0, len(chats_l), CHUNK):
        part = chats_l[i:i + CHUNK]
        out.update({r[0]: r[1] for r in conn.execute(_STICKY_SQL.format(_marks(len(part))), part)})
    return out


_STICKY_SQL = "SELECT chat, agent FROM engine_sticky WHERE chat IN ({})"


async def chat_agents(store: "Store", chat: str) -> set[str]:
    """The agents messages of ``chat`` were routed to."""
    return {r[0] for r in await store.query("SELECT agent FROM engine_chat_agents WHERE chat = ?", (chat,))}


def set_sticky_tx(conn: sqlite3.Connection, chat: str, agent: str, now: float) -> None:
    conn.execute("INSERT INTO engine_sticky (chat, agent, set_at) VALUES (?, ?, ?) "
                 "ON CONFLICT(chat) DO UPDATE SET agent = excluded.agent, set_at = excluded.set_at", (chat, agent, now))


def clear_sticky_tx(conn: sqlite3.Connection, chat: str) -> None:
    conn.execute("DELETE FROM engine_sticky WHERE chat = ?", (chat,))


def reached_many_tx(conn: sqlite3.Connection, rows: list[tuple[str, str, float]]) -> None:
    """Remember that each ``(chat, agent, at)``'s chat reached its agent (who may reply to it)."""
    conn.executemany("INSERT INTO engine_chat_agents (chat, agent, last_at) VALUES (?, ?, ?) "
                     "ON CONFLICT(chat, agent) DO UPDATE SET last_at = excluded.last_at", rows)


# --- routing (inside the router's transaction) -----------------------------------------

def still_new_tx(conn: sqlite3.Connection, seqs: list[int]) -> set[int]:
    """Which of ``seqs`` are still ``new`` (another router may have taken some)."""
    out: set[int] = set()
    for i in range(0, len(seqs), CHUNK):
        part = seqs[i:i + CHUNK]
        out |= {r[0] for r in conn.execute(
            f"SELECT seq FROM engine_inbound WHERE status = 'new' AND seq IN ({_marks(len(part))})", part)}
    return out


def mark_tx(conn: sqlite3.Connection, seq: int, status: str, agent: str | None, detail: str,
            message_ids: list[int] | None = None) -> None:
    mark_many_tx(conn, [(seq, status, agent, detail, message_ids)])


def mark_many_tx(conn: sqlite3.Connection, marks: list[tuple[int, str, str | None, str, list[int] | None]]) -> None:
    """Record what became of routed rows: ``(seq, status, agent, detail, message ids or None)``."""
    conn.executemany("UPDATE engine_inbound SET status = ?, agent = ?, detail = ?, "
                     "message_ids = COALESCE(?, message_ids) WHERE seq = ?",
                     [(status, agent, detail, None if ids is None else json.dumps(ids), seq)
                      for seq, status, agent, detail, ids in marks])


def refuse_tx(conn: sqlite3.Connection, seq: int, agent: str | None, reason: str) -> bool:
    """Mark a still-new row ``refused``; False when another router took it first."""
    return conn.execute("UPDATE engine_inbound SET status = 'refused', agent = ?, detail = ? "
                        "WHERE seq = ? AND status = 'new' RETURNING seq", (agent, reason[:500], seq)).fetchone() is not None


# --- onboarding -------------------------------------------------------------------------

async def list_holds(store: "Store") -> list[Hold]:
    rows = await store.query(
        "SELECT chat, channel, platform, GROUP_CONCAT(DISTINCT COALESCE(sender_name, sender, '?')) AS senders, "
        "COUNT(*) AS n, MIN(received_at) AS first_at, "
        "(SELECT text FROM engine_inbound i2 WHERE i2.chat = i.chat AND i2.status = 'held' "
        " ORDER BY seq DESC LIMIT 1) AS last_text "
        "FROM engine_inbound i WHERE status = 'held' GROUP BY chat, channel, platform ORDER BY first_at")
    return [Hold(r["chat"], r["channel"], r["platform"], tuple((r["senders"] or "").split(",")),
                 r["n"], r["first_at"], r["last_text"] or "") for r in rows]


def _no_holds(chat: str) -> NotFound:
    return NotFound(f"no messages are held for chat {chat!r}; `crowdtui onboard ls` lists them")


async def approve_held(store: "Store", chat: str, agent: str, *, match: str, actor: str,
                       now: float) -> tuple[int, int]:
    """In one transaction: a route ``match`` -> ``agent`` first in the table, and the chat's
    held messages back to ``new`` for the router. Returns (route id, messages released).
    The caller decides who may (the operator) and writes ``match`` for the chat."""

    def tx(conn: sqlite3.Connection) -> tuple[int, int]:
        if not conn.execute("SELECT 1 FROM engine_inbound WHERE chat = ? AND status = 'held' LIMIT 1",
                            (chat,)).fetchone():
            raise _no_holds(chat)
        if conn.execute("SELECT 1 FROM agents WHERE name = ?", (agent,)).fetchone() is None:
            raise NotFound(f"no agent named {agent!r} is registered; pick one from `crowdtui ls`")
        route = add_route_tx(conn, store, match, agent, actor=actor, position=1, now=now)
        released = conn.execute("UPDATE engine_inbound SET status = 'new' WHERE chat = ? AND status = 'held'",
                                (chat,)).rowcount
        add_event(conn, store, actor, "onboard.approved", chat, {"agent": agent, "route": route.id, "released": released})
        return route.id, released

    return await store.write_sync(tx)


async def deny_held(store: "Store", chat: str, *, actor: str) -> int:
    """Drop the messages held for ``chat`` (kept as ``denied`` for the record); returns how many."""

    def tx(conn: sqlite3.Connection) -> int:
        n = conn.execute("UPDATE engine_inbound SET status = 'denied' WHERE chat = ? AND status = 'held'",
                         (chat,)).rowcount
        if not n:
            raise _no_holds(chat)
        add_event(conn, store, actor, "onboard.denied", chat, {"dropped": n})
        return n

    return await store.write_sync(tx)
