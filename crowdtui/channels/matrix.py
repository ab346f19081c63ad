"""``crowdtui channel matrix``: a Matrix account as a channel, on mautrix (its client API).

Rooms are chats: ``matrix:<room id>``, and a thread in a room is a chat of its own,
``matrix:<room id>|<thread root event id>``. The channel joins the rooms it is invited
to. Inbound by ``/sync`` long polling; the sync token is the cursor, saved after every
event of a sync answer was acknowledged by dispatch (a sync that left events out, after a
long stop, is completed by paging the room's history back to the old token) (a channel killed in between syncs
again from the older token and dispatch drops what it has, by event id). A first start
without a token begins at the present (history is not replayed).

Senders are the homeserver's ``sender`` field (a Matrix ID the server vouches for);
anything in ``content`` that claims a name is display only. Replies keep
``m.in_reply_to``; files and images come as attachments by their ``mxc://`` URL.
Outbound ``m.text`` events carry a transaction id fixed per outbound id and part, so a
resend after a lost answer is dropped by the homeserver itself too; typing is
``/typing``. The login uses a fixed device id per channel name, so transaction ids stay
valid across restarts.

Through Matrix bridges (mautrix-telegram, -whatsapp, -discord, -signal, -slack, ...) the
rooms of those networks are Matrix rooms too: invite this account and they are chats.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from crowdtui.channels.base import NetMessage, NetworkChannel

FILE_TYPES = {"m.image", "m.file", "m.video", "m.audio"}
TEXT_TYPES = {"m.text", "m.notice", "m.emote"}
SEP = "|"
TIMELINE_LIMIT = 50  # events per room in one sync answer; older ones are paged in (backfill)
BACKFILL_PAGES = 100


def _s(value, limit: int = 255) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def parse_event(room_id: str, event: dict, own: str, names: dict[str, str]) -> NetMessage | str | None:
    """A message, a reason to refuse it, or None when the event is not a message for us."""
    if not isinstance(event, dict) or event.get("type") != "m.room.message":
        return None
    sender, event_id = _s(event.get("sender")), _s(event.get("event_id"))
    if sender is None or event_id is None or not sender.startswith("@") or ":" not in sender:
        return "event without a valid sender or event id"
    if sender == own:
        return None
    content = event.get("content")
    if not isinstance(content, dict) or not content:
        return None  # redacted
    msgtype, body = content.get("msgtype"), content.get("body")
    if not isinstance(body, str) or not isinstance(msgtype, str) or msgtype not in TEXT_TYPES | FILE_TYPES:
        return f"unsupported message ({str(msgtype)[:40]})"
    rel = content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) else {}
    thread = _s(rel.get("event_id")) if rel.get("rel_type") == "m.thread" else None
    reply = rel.get("m.in_reply_to") if isinstance(rel.get("m.in_reply_to"), dict) else {}
    reply_to = _s(reply.get("event_id"))
    if thread and rel.get("is_falling_back") is True:
        reply_to = None  # a plain message in the thread, not a reply to someone in it
    atts = ()
    text = body
    if msgtype in FILE_TYPES:
        url = _s(content.get("url"), 2000)
        if url is None:
            return "file message without an mxc:// url (encrypted media is not supported)"
        info = content.get("info") if isinstance(content.get("info"), dict) else {}
        a = {"url": url, "name": _s(content.get("filename")) or body[:255]}
        if _s(info.get("mimetype")):
            a["type"] = info["mimetype"]
        if isinstance(info.get("size"), int) and not isinstance(info.get("size"), bool) and info["size"] >= 0:
            a["size"] = info["size"]
        atts, text = (a,), ""
    elif msgtype == "m.emote":
        text = f"* {body}"
    ts = event.get("origin_server_ts")
    when = (datetime.fromtimestamp(ts / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(ts, int) and not isinstance(ts, bool) and 0 < ts < 10 ** 14 else None)
    return NetMessage(id=event_id, chat=room_id + (SEP + thread if thread else ""), text=text, sender=sender,
                      sender_name=names.get(sender), room=room_id, time=when, reply_to=reply_to, attachments=atts)


class MatrixChannel(NetworkChannel):
    platform = "matrix"
    libraries = (("mautrix", "mautrix"),)

    def __init__(self, *, homeserver: str, user: str, password: str, poll_timeout: float = 30, **kw) -> None:
        super().__init__(**kw)
        self.homeserver = homeserver.rstrip("/")
        self.user = user
        self.password = password
        self.poll_timeout = poll_timeout
        self.api = None
        self.mxid = ""
        self.filter_id = None

    async def connect(self) -> None:
        from mautrix.client import ClientAPI
        from mautrix.types import UserIdentifier  # noqa: F401  (the login identifier type)

        api = ClientAPI(base_url=self.homeserver)
        self.api = api
        resp = await api.login(identifier=self.user, password=self.password,
                               device_id=f"CROWDTUI_{self.name.upper()}", device_name=f"crowdtui channel {self.name}")
        self.mxid = str(resp.user_id)
        self.filter_id = await api.create_filter({
            "room": {"timeline": {"limit": TIMELINE_LIMIT, "types": ["m.room.message", "m.room.member"]},
                     "state": {"types": ["m.room.member"], "lazy_load_members": True,
                      "include_redundant_members": True},  # senders' names in every answer
                     "ephemeral": {"types": []}},
            "presence": {"types": []}, "account_data": {"types": []}})
        self.status(f"matrix: syncing as {self.mxid} at {self.homeserver}")

    async def disconnect(self) -> None:
        api, self.api = self.api, None
        if api is not None:  # no logout: it would delete the device and its transaction ids
            await api.api.session.close()

    async def pump(self) -> None:
        token = self.state.cursor if isinstance(self.state.cursor, str) else None
        data = await self.api.sync(since=token, timeout=int(self.poll_timeout * 1000), filter_id=self.filter_id)
        if not isinstance(data, dict) or not isinstance(data.get("next_batch"), str):
            raise ValueError("sync answered without next_batch")
        rooms = data.get("rooms") if isinstance(data.get("rooms"), dict) else {}
        for room_id in (rooms.get("invite") or {}):
            try:
                await self.api.join_room_by_id(room_id)
                self.status(f"matrix: joined {room_id} (invited)")
            except Exception as exc:
                self.status(f"matrix: could not join {room_id}: {type(exc).__name__}")
        if token is not None:  # a first start begins now: no history is replayed
            for room_id, room in (rooms.get("join") or {}).items():
                await self._room(str(room_id), room if isinstance(room, dict) else {}, token)
        self.state.advance(data["next_batch"])

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list:
        """The events a limited sync left out: paged backwards from ``prev_batch`` down to
        our previous sync token, returned oldest first."""
        from mautrix.api import Method, Path

        older: list = []
        frm = prev_batch
        for _ in range(BACKFILL_PAGES):
            data = await self.api.api.request(Method.GET, Path.v3.rooms[room_id].messages, query_params={
                "dir": "b", "from": frm, "to": since, "limit": "100",
                "filter": json.dumps({"types": ["m.room.message"]})})
            chunk = data.get("chunk") if isinstance(data, dict) else None
            if not chunk:
                return older[::-1]
            older.extend(chunk)
            if not isinstance(data.get("end"), str) or data["end"] == frm:
                return older[::-1]
            frm = data["end"]
        self.status(f"matrix: {room_id}: over {BACKFILL_PAGES} pages missed; the oldest are left out")
        return older[::-1]

    async def _room(self, room_id: str, room: dict, since: str) -> None:
        names: dict[str, str] = {}
        timeline = room.get("timeline") if isinstance(room.get("timeline"), dict) else {}
        events = [e for e in (timeline.get("events") or []) if isinstance(e, dict)]
        joined_now = any(e.get("type") == "m.room.member" and e.get("state_key") == self.mxid for e in events)
        if timeline.get("limited") and isinstance(timeline.get("prev_batch"), str) and not joined_now:
            events = [e for e in await self._backfill(room_id, timeline["prev_batch"], since)
                      if isinstance(e, dict)] + events
        state = room.get("state") if isinstance(room.get("state"), dict) else {}
        for e in [e for e in (state.get("events") or []) if isinstance(e, dict)] + events:
            if e.get("type") == "m.room.member" and isinstance(e.get("content"), dict):
                name = _s(e["content"].get("displayname"))
                if name and _s(e.get("state_key")):
                    names[e["state_key"]] = name
        for e in events:
            try:
                got = parse_event(room_id, e, self.mxid, names)
            except Exception as exc:  # a poison event is refused alone, never stops the sync
                got = f"unreadable event ({type(exc).__name__})"
            if isinstance(got, NetMessage):
                await self.deliver(got)
            elif isinstance(got, str):
                await self._refuse(NetMessage(id=str(e.get("event_id"))[:200], chat=room_id, text=""), got)

    async def send_part(self, chat: str, text: str, body: dict, index: int) -> None:
        from mautrix.types import EventType

        if self.api is None:
            raise ConnectionError("not connected to the homeserver yet")
        room_id, _, thread = chat.partition(SEP)
        who = body.get("from")
        content: dict = {"msgtype": "m.text", "body": f"{who}: {text}" if isinstance(who, str) and who else text}
        reply_to = body.get("reply_to") if isinstance(body.get("reply_to"), str) else None
        if reply_to and not reply_to.startswith("$"):
            reply_to = None
        if thread:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread,
                                       "is_falling_back": reply_to is None,
                                       "m.in_reply_to": {"event_id": reply_to or thread}}
        elif reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        await self.api.send_message_event(room_id, EventType.ROOM_MESSAGE, json.loads(json.dumps(content)),
                                          txn_id=f"crowd-{body.get('id')}-{index}")

    async def typing(self, chat: str) -> None:
        if self.api is not None:
            await self.api.set_typing(chat.partition(SEP)[0], timeout=10_000)

    async def refused(self, msg: NetMessage, reason: str) -> None:
        if self.api is not None and msg.chat.startswith("!") and reason.startswith("message is"):
            from mautrix.types import EventType

            await self.api.send_message_event(msg.chat.partition(SEP)[0], EventType.ROOM_MESSAGE,
                                              {"msgtype": "m.notice", "body": f"(not delivered: {reason})"})
