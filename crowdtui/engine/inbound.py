"""Inbound chat messages: validation, idempotent storage, routing, onboarding holds.

Flow: the channel API validates a body and calls :func:`store_inbound` (one
transaction; the channel is answered 200 only after it committed). The router then
takes rows in arrival order and, for each, in ONE transaction: puts the message in
the chosen agent's inbox (or holds it, or answers a command) and marks the row done.
So a crash anywhere leaves every acknowledged message either untouched (routed on
restart) or routed, never both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from qms.errors import InvalidInput, NotFound, PermissionDenied, QmsError
from qms.names import OPERATOR, validate_name

from crowdtui.engine import outbound
from crowdtui.engine.channels import Channel
from crowdtui.engine.delivery import deliver_in
from crowdtui.engine.matching import Decision, Incoming, decide, glob_escape
from crowdtui.engine.routes import add_route, list_routes, record_refusal

MAX_ID = 200
MAX_CHAT = 200
MAX_NAME = 200
MAX_TEXT = 32 * 1024
MAX_ATTACHMENTS = 20
ENGINE = "engine"

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LABEL_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEADER_SAFE = str.maketrans({"|": "/", "[": "(", "]": ")"})


@dataclass(frozen=True)
class InboundMsg:
    id: str
    chat: str
    text: str
    sender: str | None = None
    sender_name: str | None = None
    room: str | None = None
    time: str | None = None
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
    status: str
    agent: str | None
    detail: str


INBOUND_COLS = ("seq, channel, msg_id, chat, platform, room, sender, sender_name, text, reply_to, "
                "attachments, received_at, status, agent, detail")


def _stored(r) -> StoredInbound:
    return StoredInbound(r["seq"], r["channel"], r["msg_id"], r["chat"], r["platform"], r["room"],
                         r["sender"], r["sender_name"], r["text"], r["reply_to"],
                         json.loads(r["attachments"]), r["received_at"], r["status"], r["agent"],
                         r["detail"])


def _label(payload: dict, key: str, limit: int, *, required: bool = False) -> str | None:
    value = payload.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"field {key!r} is missing; send it as a string")
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "time", "reply_to"):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"field {key!r} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise InvalidInput(f"field {key!r} is empty; send a non-empty string")
    if len(value) > limit:
        raise InvalidInput(f"field {key!r} is {len(value)} characters; the limit is {limit}")
    if _LABEL_CTRL.search(value):
        raise InvalidInput(f"field {key!r} contains control characters; send plain text")
    return value


INBOUND_FIELDS = {"id", "chat", "text", "sender", "sender_name", "room", "time", "reply_to", "attachments"}
ATTACHMENT_FIELDS = {"url", "name", "type", "size"}


def parse_inbound(payload: Any) -> InboundMsg:
    """Check one inbound body; raise InvalidInput naming the field at fault."""
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object with id, chat and text")
    unknown = set(payload) - INBOUND_FIELDS
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(INBOUND_FIELDS))}")
    text = payload.get("text")
    if text is None:
        raise InvalidInput("field 'text' is missing; send the message text as a string")
    if not isinstance(text, str):
        raise InvalidInput(f"field 'text' must be a string, not {type(text).__name__}")
    if len(text.encode()) > MAX_TEXT:
        raise InvalidInput(f"field 'text' is over {MAX_TEXT} bytes; split the message")
    if _CTRL.search(text):
        raise InvalidInput("field 'text' contains control characters other than newline and tab")
    atts = payload.get("attachments", [])
    if not isinstance(atts, list):
        raise InvalidInput("field 'attachments' must be a list of {url, name, type, size} objects")
    if len(atts) > MAX_ATTACHMENTS:
        raise InvalidInput(f"too many attachments ({len(atts)}); the limit is {MAX_ATTACHMENTS}")
    clean = []
    for i, a in enumerate(atts):
        if not isinstance(a, dict) or not isinstance(a.get("url"), str) or not a["url"]:
            raise InvalidInput(f"attachment {i} must be an object with a 'url' string (sent by reference)")
        if set(a) - ATTACHMENT_FIELDS:
            raise InvalidInput(f"attachment {i} has unknown field {sorted(set(a) - ATTACHMENT_FIELDS)[0]!r}")
        for k in ("url", "name", "type"):
            _label(a, k, 2000)
        if "size" in a and (not isinstance(a["size"], int) or isinstance(a["size"], bool) or a["size"] < 0):
            raise InvalidInput(f"attachment {i} 'size' must be a non-negative integer (bytes)")
        clean.append(dict(a))
    if not text.strip() and not clean:
        raise InvalidInput("field 'text' is empty and there are no attachments; nothing to deliver")
    return InboundMsg(
        id=_label(payload, "id", MAX_ID, required=True),
        chat=_label(payload, "chat", MAX_CHAT, required=True),
        text=text,
        sender=_label(payload, "sender", MAX_NAME),
        sender_name=_label(payload, "sender_name", MAX_NAME),
        room=_label(payload, "room", MAX_NAME),
        time=_label(payload, "time", 64),
        reply_to=_label(payload, "reply_to", MAX_ID),
        attachments=tuple(clean),
    )


async def store_inbound(store, channel: Channel, msg: InboundMsg, *, now: float) -> tuple[int, bool]:
    """Store ``msg`` once per (channel, id). Returns (seq, newly stored)."""
    return (await store_inbound_many(store, [(channel, msg)], now=now))[0]


async def store_inbound_many(store, items: list[tuple[Channel, InboundMsg]], *,
                             now: float) -> list[tuple[int, bool]]:
    """Store several messages in one transaction (one fsync); (seq, newly stored) for each."""
    for channel, msg in items:
        if not channel.owns(msg.chat):
            raise PermissionError(
                f"chat {msg.chat!r} is not one of channel {channel.name!r}'s prefixes "
                f"({', '.join(channel.prefixes)}); register the prefix first"
            )
    out = []
    async with store.write() as db:
        for channel, msg in items:
            cur = await db.execute(
                "INSERT INTO engine_inbound (channel, msg_id, chat, platform, room, sender, sender_name, "
                "text, sent_at, reply_to, attachments, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(channel, msg_id) DO NOTHING RETURNING seq",
                (channel.name, msg.id, msg.chat, channel.platform, msg.room, msg.sender, msg.sender_name,
                 msg.text, msg.time, msg.reply_to, json.dumps(list(msg.attachments)), now))
            row = await cur.fetchone()
            if row is None:
                cur = await db.execute("SELECT seq FROM engine_inbound WHERE channel = ? AND msg_id = ?",
                                       (channel.name, msg.id))
                out.append(((await cur.fetchone())[0], False))
            else:
                out.append((row[0], True))
    return out


async def get_inbound(store, channel: str, msg_id: str) -> StoredInbound | None:
    rows = await store.query(f"SELECT {INBOUND_COLS} FROM engine_inbound WHERE channel = ? AND msg_id = ?",
                             (channel, msg_id))
    return _stored(rows[0]) if rows else None


async def list_inbound(store, *, status: str | None = None, chat: str | None = None) -> list[StoredInbound]:
    sql, params = f"SELECT {INBOUND_COLS} FROM engine_inbound WHERE 1=1", []
    if status:
        sql += " AND status = ?"
        params.append(status)
    if chat:
        sql += " AND chat = ?"
        params.append(chat)
    return [_stored(r) for r in await store.query(sql + " ORDER BY seq", params)]


def message_body(row: StoredInbound, text: str) -> str:
    who = row.sender_name or row.sender or "someone"
    if row.sender and row.sender_name and row.sender != row.sender_name:
        who = f"{row.sender_name} ({row.sender})"
    who = who.translate(_HEADER_SAFE)  # a sender's name cannot forge header fields
    lines = [f"[chat {row.chat} | from {who} | ref {row.channel}/{row.msg_id}]", text]
    for a in row.attachments:
        lines.append(f"attachment: {a.get('name') or 'file'} {a['url']}")
    lines.append(f'(answer with reply(chat="{row.chat}", text=...))')
    return "\n".join(lines)


Hook = Callable[..., Awaitable[Any]]


@dataclass
class Router:
    """Routes stored inbound rows. ``stop_agent(name)`` backs ``/stop``;
    ``delivered(name)`` is told after an agent got a message (launch policies)."""

    store: Any
    now: Callable[[], float]
    stop_agent: Hook | None = None
    delivered: Hook | None = None
    log: Callable[[str], None] = lambda line: None
    typing: bool = True  # tell the chat the agent is at work when a message reaches it
    counts: dict = field(default_factory=lambda: {"routed": 0, "held": 0, "command": 0, "refused": 0})

    async def route_pending(self, limit: int = 200) -> int:
        """Route every stored, not yet routed message in arrival order; returns how many.

        Rows go in batches, one transaction each; if a batch meets an error (say, an
        agent was removed), its rows are redone one by one so only the bad one is refused.
        """
        done = 0
        while True:
            rows = await self.store.query(
                f"SELECT {INBOUND_COLS} FROM engine_inbound WHERE status = 'new' ORDER BY seq LIMIT ?",
                (limit,))
            if not rows:
                return done
            routes = await list_routes(self.store)
            agents = {a.name for a in await self.store.list_agents()}
            batch = [_stored(r) for r in rows]
            try:
                await self._route_batch(batch, routes, agents)
            except QmsError:
                for row in batch:
                    await self.route_one(row, routes, agents)
            done += len(batch)

    async def _stickies(self, chats: set[str]) -> dict[str, str]:
        chats_l = sorted(chats)
        out: dict[str, str] = {}
        for i in range(0, len(chats_l), 500):
            part = chats_l[i:i + 500]
            rows = await self.store.query(
                f"SELECT chat, agent FROM engine_sticky WHERE chat IN ({','.join('?' * len(part))})", part)
            out.update({r[0]: r[1] for r in rows})
        return out

    async def _route_batch(self, rows: list[StoredInbound], routes, agents) -> None:
        sticky = await self._stickies({r.chat for r in rows})
        after: list[tuple[Hook, str]] = []
        statuses = []
        async with self.store.write() as db:
            # claim the batch in one statement (another router may have taken some rows)
            seqs = [r.seq for r in rows]
            cur = await db.execute(
                f"SELECT seq FROM engine_inbound WHERE status = 'new' AND seq IN ({','.join('?' * len(seqs))})",
                seqs)
            mine = {r[0] for r in await cur.fetchall()}
            checked: set[str] = set()  # recipients known to exist (we hold the write lock)
            for row in rows:
                if row.seq not in mine:
                    statuses.append(None)
                    continue
                current = sticky.get(row.chat)
                d = self._decide(row, routes, agents, current)
                statuses.append(await self._apply_in(db, row, d, current, after, claimed=True, checked=checked))
                if d.kind == "sticky":
                    sticky[row.chat] = d.agent
                elif d.kind == "command" and d.command == "new":
                    sticky.pop(row.chat, None)
        await self.finish(statuses, after)

    def _decide(self, row: StoredInbound, routes, agents, sticky) -> Decision:
        msg = Incoming(row.chat, row.text, platform=row.platform, room=row.room, sender=row.sender)
        return decide(msg, routes, sticky=sticky, agents=agents)

    async def finish(self, statuses, after) -> None:
        """Count what was done and run the after-commit hooks (launch, stop) once per agent."""
        for status in statuses:
            if status is not None:
                self.counts[status if status in self.counts else "routed"] += 1
        seen = set()
        for hook, name in after:
            if (hook, name) in seen:
                continue
            seen.add((hook, name))
            try:
                await hook(name)
            except Exception as exc:  # routing is done; a failed launch or stop is logged
                self.log(f"{getattr(hook, '__name__', 'hook')} {name}: {exc}")

    async def route_one(self, row: StoredInbound, routes, agents) -> Decision:
        sticky = (await self._stickies({row.chat})).get(row.chat)
        d = self._decide(row, routes, agents, sticky)
        after: list[tuple[Hook, str]] = []
        try:
            async with self.store.write() as db:
                status = await self._apply_in(db, row, d, sticky, after)
        except QmsError as exc:  # e.g. the agent was removed: refuse, tell the chat, move on
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            async with self.store.write() as db:
                cur = await db.execute(
                    "UPDATE engine_inbound SET status = 'refused', agent = ?, detail = ? "
                    "WHERE seq = ? AND status = 'new' RETURNING seq", (d.agent, reason[:500], row.seq))
                if await cur.fetchone() is not None:
                    await self._say(db, row, f"could not deliver: {reason}")
            status = "refused"
            self.log(f"inbound {row.channel}/{row.msg_id} refused: {reason}")
        await self.finish([status], after)
        return d

    async def _apply_in(self, db, row: StoredInbound, d: Decision, sticky, after, *,
                        claimed: bool = False, checked: set[str] | None = None) -> str | None:
        """Carry out ``d`` for ``row`` inside the open transaction ``db``; returns the row's status.
        ``claimed``: the caller already saw the row still 'new' in this transaction."""
        now = self.now()
        if not claimed:
            cur = await db.execute("SELECT status FROM engine_inbound WHERE seq = ?", (row.seq,))
            current = await cur.fetchone()
            if current is None or current[0] != "new":
                return None  # another router took it
        status, agent, detail = "routed", d.agent, d.how
        message_ids = None
        if d.kind == "deliver":
            ids = await deliver_in(self.store, db, sender=row.channel, recipient=d.agent,
                                   body=message_body(row, d.text), thread=row.chat, now=now, checked=checked)
            message_ids = json.dumps(ids)
            await db.execute(
                "INSERT INTO engine_chat_agents (chat, agent, last_at) VALUES (?, ?, ?) "
                "ON CONFLICT(chat, agent) DO UPDATE SET last_at = excluded.last_at",
                (row.chat, d.agent, now))
            if self.typing:  # the chat shows the agent at work until its reply comes
                await outbound.enqueue_in(db, self.store, chat=row.chat, text="", agent=d.agent, now=now,
                                          kind="typing")
            if self.delivered:
                after.append((self.delivered, d.agent))
        elif d.kind == "hold":
            status, detail = "held", d.reason
            await self.store.append_event_in(db, ENGINE, "onboard.held", row.chat,
                                             {"channel": row.channel, "sender": row.sender,
                                              "msg": row.msg_id})
        elif d.kind == "sticky":
            status = "command"
            await db.execute(
                "INSERT INTO engine_sticky (chat, agent, set_at) VALUES (?, ?, ?) "
                "ON CONFLICT(chat) DO UPDATE SET agent = excluded.agent, set_at = excluded.set_at",
                (row.chat, d.agent, now))
            await self._say(db, row, f"now talking to {d.agent}; /new goes back to the routes")
        elif d.kind == "command":
            status, detail = "command", d.command
            text = await self._command(db, row, d, sticky, now, after)
            await self._say(db, row, text)
        else:  # error
            status, detail = "refused", d.reason
            await self._say(db, row, d.reason)
        await db.execute("UPDATE engine_inbound SET status = ?, agent = ?, detail = ?, "
                         "message_ids = COALESCE(?, message_ids) WHERE seq = ?",
                         (status, agent, detail or "", message_ids, row.seq))
        return status

    async def _command(self, db, row, d: Decision, sticky, now, after) -> str:
        if d.command == "new":
            await db.execute("DELETE FROM engine_sticky WHERE chat = ?", (row.chat,))
            return f"sticky agent cleared; the routes choose again (now {d.extra.get('route_agent', d.agent)})"
        if d.command == "who":
            how = "sticky" if sticky and sticky == d.agent else "route"
            return f"you are talking to {d.agent} ({how})"
        if self.stop_agent is None:
            return f"cannot stop {d.agent}: no runtime in this engine"
        after.append((self.stop_agent, d.agent))
        return f"stopping {d.agent}"

    async def _say(self, db, row: StoredInbound, text: str) -> None:
        await outbound.enqueue_in(db, self.store, chat=row.chat, text=text, agent=ENGINE,
                                  now=self.now(), reply_to=row.msg_id)


# --- onboarding ---------------------------------------------------------------

@dataclass(frozen=True)
class Hold:
    chat: str
    channel: str
    platform: str
    senders: tuple[str, ...]
    count: int
    first_at: float
    last_text: str


async def list_holds(store) -> list[Hold]:
    rows = await store.query(
        "SELECT chat, channel, platform, GROUP_CONCAT(DISTINCT COALESCE(sender_name, sender, '?')) AS senders, "
        "COUNT(*) AS n, MIN(received_at) AS first_at, "
        "(SELECT text FROM engine_inbound i2 WHERE i2.chat = i.chat AND i2.status = 'held' "
        " ORDER BY seq DESC LIMIT 1) AS last_text "
        "FROM engine_inbound i WHERE status = 'held' GROUP BY chat, channel, platform ORDER BY first_at", ())
    return [Hold(r["chat"], r["channel"], r["platform"], tuple((r["senders"] or "").split(",")),
                 r["n"], r["first_at"], r["last_text"] or "") for r in rows]


async def _operator_only(store, actor: str, action: str, chat: str) -> None:
    if actor != OPERATOR:
        reason = f"only the operator may {action} a held chat; {actor} asked to {action} {chat!r}"
        await record_refusal(store, actor, f"onboard.{action}", chat[:MAX_CHAT], reason)
        raise PermissionDenied(reason)


async def approve_chat(store, chat: str, agent: str, *, actor: str, now: float) -> tuple[int, int]:
    """Let ``chat`` in: a route ``chat=<chat>`` to ``agent`` goes first in the table and the
    held messages go back to the router. Returns (route id, messages released).
    Only the operator may: an agent's route never lets an unknown sender in."""
    validate_name(agent)
    await _operator_only(store, actor, "approve", chat)
    held = await store.query("SELECT COUNT(*) FROM engine_inbound WHERE chat = ? AND status = 'held'", (chat,))
    if not held[0][0]:
        raise NotFound(f"no messages are held for chat {chat!r}; `crowdtui onboard ls` lists them")
    if await store.get_agent(agent) is None:
        raise NotFound(f"no agent named {agent!r} is registered; pick one from `crowdtui ls`")
    route = await add_route(store, f"chat={glob_escape(chat)}", agent, actor=actor, position=1, now=now)
    async with store.write() as db:
        cur = await db.execute("UPDATE engine_inbound SET status = 'new' WHERE chat = ? AND status = 'held'",
                               (chat,))
        released = cur.rowcount
        await store.append_event_in(db, actor, "onboard.approved", chat,
                                    {"agent": agent, "route": route.id, "released": released})
    return route.id, released


async def deny_chat(store, chat: str, *, actor: str) -> int:
    """Drop the messages held for ``chat`` (kept as ``denied`` for the record)."""
    await _operator_only(store, actor, "deny", chat)
    async with store.write() as db:
        cur = await db.execute(
            "UPDATE engine_inbound SET status = 'denied' WHERE chat = ? AND status = 'held'", (chat,))
        n = cur.rowcount
        if not n:
            raise NotFound(f"no messages are held for chat {chat!r}; `crowdtui onboard ls` lists them")
        await store.append_event_in(db, actor, "onboard.denied", chat, {"dropped": n})
    return n
