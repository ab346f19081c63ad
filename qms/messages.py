"""Messages and inboxes: direct, broadcast (``*``), priority, thread, read/unread per recipient."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Iterable, Mapping, Sequence

from qms.core import StoreCore
from qms.errors import InvalidInput, NotFound, TooLarge
from qms.event_rows import INSERT_EVENT, add_events
from qms.models import Message
from qms.names import BROADCAST, OPERATOR, shown, validate_name, validate_target, validate_text
from qms.quotas import check_messages
from qms.registry import agent_row, no_such_agent
from qms.writer import Transaction

MAX_MESSAGE_BYTES = 64 * 1024
MAX_BATCH = 10_000
PRIORITIES = {"high": 0, "normal": 1, "low": 2}
PREVIEW_CHARS = 120
SMALL_INBOX = 100  # an inbox read of up to this many messages runs on the caller's thread (StoreCore.query_small)


MAX_ID = 2**63 - 1  # SQLite's largest integer: ids (rowids) are never above it


def check_id(value: object, what: str = "message id") -> int:
    """``value`` if it is an integer id SQLite can hold (1 to 2**63-1), else InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidInput(f"{what} '{shown(value)}' is not a valid id: use a whole number from 1 to {MAX_ID}")
    return value


def message_from_row(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"], sender=row["sender"], recipient=row["recipient"], body=row["body"],
        priority=row["priority"], thread=row["thread"], created_at=row["created_at"],
        read_at=row["read_at"],
    )


def check_body(body: object, what: str = "message body") -> str:
    if not isinstance(body, str):
        raise InvalidInput(f"{what} must be text, not {type(body).__name__}")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid Unicode text ({exc.reason}); send UTF-8 text") from exc
    if size > MAX_MESSAGE_BYTES:
        raise TooLarge(
            f"{what} is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes: shorten it or put "
            "the text in a document and send its id"
        )
    return body


def check_priority(priority: object) -> str:
    if priority not in PRIORITIES:
        raise InvalidInput(f"invalid priority '{shown(priority)}': use high, normal or low")
    return priority  # type: ignore[return-value]


def check_thread(thread: object) -> str | None:
    if thread is None:
        return None
    return validate_text(thread, "thread", max_chars=200)


ROWS_PER_INSERT = 500  # 5 values each: well under SQLite's 32,766 bound parameters


def deliver_many_tx(conn: sqlite3.Connection, store: StoreCore, items: list[tuple[str, str, str, str | None]], *,
                    checked: set[str] | None = None) -> list[int]:
    """Put ``(sender, recipient, body, thread)`` messages in their recipients' inboxes inside an
    open transaction on the writer's thread, with the same rows and ``message.sent`` events
    ``send_message`` makes (no quota: for dispatch's own senders, e.g. a channel bringing chat
    messages in). One INSERT for the messages and one for their events, per 500. Returns the
    messages' ids in order.

    ``checked``: recipients already found registered in this same transaction (skipped;
    found ones are added)."""
    checked = set() if checked is None else checked
    for sender, recipient, body, thread in items:
        validate_name(sender)
        validate_name(recipient)
        check_body(body)
        check_thread(thread)
        if recipient != OPERATOR and recipient not in checked:
            if conn.execute("SELECT 1 FROM agents WHERE name = ?", (recipient,)).fetchone() is None:
                raise NotFound(f"no agent named {recipient!r} is registered")
            checked.add(recipient)
    now, ids = time.time(), []
    for i in range(0, len(items), ROWS_PER_INSERT):
        part = items[i:i + ROWS_PER_INSERT]
        rows = conn.execute(
            "INSERT INTO messages (sender, recipient, body, priority, prio_rank, thread, created_at) VALUES "
            + ",".join(["(?, ?, ?, 'normal', ?, ?, ?)"] * len(part)) + " RETURNING id",
            [v for sender, recipient, body, thread in part
             for v in (sender, recipient, body, PRIORITIES["normal"], thread, now)]).fetchall()
        # one statement's rows get rising ids in VALUES order (we hold the write lock);
        # RETURNING may list them in any order
        ids += sorted(r[0] for r in rows)
    events = []
    for (sender, recipient, body, thread), mid in zip(items, ids):
        detail: dict[str, Any] = {"id": mid, "from": sender, "priority": "normal", "preview": body[:PREVIEW_CHARS]}
        if thread is not None:
            detail["thread"] = thread
        events.append((sender, "message.sent", recipient, detail))
    add_events(conn, store, events)
    return ids


class MessagesMixin(StoreCore):
    async def deliver_in(
        self, db: Transaction, sender: str, recipient: str, body: str, *,
        priority: str = "normal", thread: str | None = None, broadcast: bool = False,
    ) -> Message:
        """Insert one checked message and its ``message.sent`` event inside a write transaction."""
        now = time.time()
        rows = await db.execute_fetchall(
            "INSERT INTO messages (sender, recipient, body, priority, prio_rank, thread, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (sender, recipient, body, priority, PRIORITIES[priority], thread, now),
        )
        msg = message_from_row(rows[0])
        detail = {"id": msg.id, "from": sender, "priority": priority, "preview": body[:PREVIEW_CHARS]}
        if thread is not None:
            detail["thread"] = thread
        if broadcast:
            detail["broadcast"] = True
        await self.append_event_in(db, sender, "message.sent", recipient, detail)
        return msg

    async def _recipients_in(self, db: Transaction, sender: str, to: str) -> list[str]:
        if to == BROADCAST:
            rows = await db.execute_fetchall(
                "SELECT name FROM agents WHERE name != ? ORDER BY name", (sender,)
            )
            return [r[0] for r in rows]
        if to != OPERATOR and await agent_row(db, to) is None:
            raise no_such_agent(to)
        return [to]

    def _send_tx(
        self, conn: sqlite3.Connection, sender: str, plan: list[tuple[str, str, str, str | None]],
    ) -> list[Message]:
        """Store ``plan`` [(to, body, priority, thread)] and its events (runs on the writer thread)."""
        targets = {to for to, *_ in plan}
        if BROADCAST in targets or len(targets) > 1:
            agents = [r[0] for r in conn.execute("SELECT name FROM agents ORDER BY name")]
            known = set(agents)
        else:
            agents = []
            known = {r[0] for r in conn.execute("SELECT name FROM agents WHERE name IN (?)", tuple(targets))}
        for to in targets:
            if to not in (BROADCAST, OPERATOR) and to not in known:
                raise no_such_agent(to)
        everyone = [a for a in agents if a != sender]
        now = time.time()
        rows = []
        for to, body, priority, thread in plan:
            for rcpt in everyone if to == BROADCAST else [to]:
                rows.append((sender, rcpt, body, priority, PRIORITIES[priority], thread, now, to == BROADCAST))
        if not rows:
            return []
        check_messages(conn, self.quotas, sender, len(rows), sum(len(r[2].encode()) for r in rows), now)
        # We hold the write lock: every id above the current maximum is one of ours.
        before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
        conn.executemany(
            "INSERT INTO messages (sender, recipient, body, priority, prio_rank, thread, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [r[:7] for r in rows],
        )
        out = [
            message_from_row(r)
            for r in conn.execute("SELECT * FROM messages WHERE id > ? ORDER BY id", (before,))
        ]
        meta = self.event_meta
        events = []
        for msg, row in zip(out, rows):
            detail: dict[str, Any] = {
                "id": msg.id, "from": sender, "priority": msg.priority, "preview": msg.body[:PREVIEW_CHARS]
            }
            if msg.thread is not None:
                detail["thread"] = msg.thread
            if row[7]:
                detail["broadcast"] = True
            if meta:
                detail.update(meta)
            # sender and recipient are checked names, the kind is ours: no need to check again
            events.append((now, sender, "message.sent", msg.recipient, json.dumps(detail, sort_keys=True)))
        conn.executemany(INSERT_EVENT, events)
        return out

    async def send_message(
        self, sender: str, to: str, body: str, *, priority: str = "normal", thread: str | None = None,
    ) -> list[Message]:
        """Send a message; one Message per recipient (``*``: every agent but the sender).

        Returns once the message is durably stored (committed with synchronous=FULL).
        """
        validate_name(sender)
        validate_target(to)
        check_body(body)
        check_priority(priority)
        check_thread(thread)
        return await self.write_sync(
            lambda conn: self._send_tx(conn, sender, [(to, body, priority, thread)])
        )

    async def send_messages_batch(
        self, sender: str, items: Iterable[tuple[str, str] | Mapping[str, Any]],
    ) -> list[Message]:
        """Send many messages in one transaction (one fsync): all stored, or none.

        Each item is ``(to, body)`` or ``{"to": ..., "body": ..., "priority": ..., "thread": ...}``.
        """
        validate_name(sender)
        checked: list[tuple[str, str, str, str | None]] = []
        for item in items:
            if isinstance(item, Mapping):
                unknown = set(item) - {"to", "body", "priority", "thread"}
                if unknown or "to" not in item or "body" not in item:
                    raise InvalidInput(
                        "each batch item needs 'to' and 'body' (optional 'priority', 'thread'); "
                        f"got keys {sorted(item)}"
                    )
                to, body = item["to"], item["body"]
                priority, thread = item.get("priority", "normal"), item.get("thread")
            elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2:
                to, body = item
                priority, thread = "normal", None
            else:
                raise InvalidInput("each batch item must be (to, body) or a dict with 'to' and 'body'")
            checked.append(
                (validate_target(to), check_body(body), check_priority(priority), check_thread(thread))
            )
            if len(checked) > MAX_BATCH:
                raise InvalidInput(f"a batch holds at most {MAX_BATCH} messages; split it")
        if not checked:
            return []
        return await self.write_sync(
            lambda conn: self._send_tx(conn, sender, checked)
        )

    async def inbox(self, name: str, *, unread_only: bool = False, limit: int = 100) -> list[Message]:
        """A principal's messages: high > normal > low, then oldest first."""
        validate_name(name)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput(f"limit must be an integer from 1 to 10000, not '{shown(limit)}'")
        # one read (one trip to the reader's thread): whether the agent exists rides along
        # as a column; a row whose id is NULL stands for an empty inbox
        unread = " AND read_at IS NULL" if unread_only else ""
        read = self.query_small if limit <= SMALL_INBOX else self.query  # (a bigger one: off the loop)
        rows = await read(
            "SELECT (SELECT 1 FROM agents WHERE name = :n) AS known, m.* FROM (SELECT 1) LEFT JOIN "
            f"(SELECT * FROM messages WHERE recipient = :n{unread} ORDER BY prio_rank, id LIMIT :limit) AS m "
            "ORDER BY m.prio_rank, m.id",
            {"n": name, "limit": limit})
        if name != OPERATOR and not rows[0]["known"]:
            raise no_such_agent(name)
        return [message_from_row(r) for r in rows if r["id"] is not None]

    async def mark_read(self, name: str, ids: Iterable[int]) -> int:
        """Mark ``name``'s own messages read; returns how many changed (others' ids are ignored)."""
        validate_name(name)
        id_list = []
        for i in ids:
            id_list.append(check_id(i))
        id_list = sorted(set(id_list))
        if not id_list:
            return 0
        now = time.time()
        marked: list[int] = []
        async with self.write() as db:
            for start in range(0, len(id_list), 500):
                chunk = id_list[start:start + 500]
                rows = await db.execute_fetchall(
                    f"UPDATE messages SET read_at = ? WHERE recipient = ? AND read_at IS NULL"
                    f" AND id IN ({','.join('?' * len(chunk))}) RETURNING id",
                    (now, name, *chunk),
                )
                marked += [r[0] for r in rows]
            if marked:
                await self.append_event_in(db, name, "message.read", name, {"ids": sorted(marked)})
        return len(marked)

    async def unread_counts(self) -> dict[str, int]:
        """Unread messages per principal: every registered agent and the operator (0 included)."""
        rows = await self.query(
            "SELECT recipient, COUNT(*) FROM messages WHERE read_at IS NULL GROUP BY recipient"
        )
        counts = {OPERATOR: 0}
        for r in await self.query("SELECT name FROM agents"):
            counts[r[0]] = 0
        for r in rows:
            counts[r[0]] = r[1]
        return counts

    async def oldest_unread(self) -> dict[str, float]:
        """When each principal's oldest unread message was sent (those with none are left out)."""
        rows = await self.query(
            "SELECT recipient, MIN(created_at) FROM messages WHERE read_at IS NULL GROUP BY recipient")
        return {r[0]: r[1] for r in rows}

    async def get_message(self, id: int) -> Message:
        check_id(id)
        rows = await self.query("SELECT * FROM messages WHERE id = ?", (id,))
        if not rows:
            raise NotFound(f"no message with id {id}; check the id (`crowdtui inbox` lists yours)")
        return message_from_row(rows[0])
