"""``crowdtui channel telegram``: a Telegram bot as a channel, on python-telegram-bot.

Inbound by long polling ``getUpdates`` (offset = the last update acknowledged by
dispatch + 1, saved in the channel's state file only after dispatch stored it; Telegram
forgets updates below the offset we send). Updates are read as raw JSON
(``do_api_request``) and checked field by field here, so a malformed update is refused on
its own instead of failing the whole batch in a parser. Outbound with ``sendMessage``
(split at 4000 characters, replies as ``reply_parameters``, forum topics kept) and
``sendChatAction`` for typing.

Chats are ``telegram:<chat id>`` (``telegram:<chat id>/<topic id>`` in a forum topic);
``room`` is the chat id, ``sender`` the numeric user id (names are display only), the
message id ``<chat id>:<message id>``. The API base URL is configurable (a local Bot
API server, or a test's stand-in).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from crowdtui.channels.base import NetMessage, NetworkChannel

DEFAULT_API = "https://api.telegram.org"
PART = 4000  # Telegram allows 4096 UTF-16 units per message; stay under it
_CHAT = re.compile(r"(-?\d{1,20})(?:/(\d{1,20}))?")


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _when(date: int | None) -> str | None:
    try:
        return datetime.fromtimestamp(date, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if date else None
    except (OverflowError, ValueError, OSError):
        return None


def parse_update(update: dict) -> NetMessage | str | None:
    """A message, a reason to refuse it, or None when the update is not a message."""
    m = update.get("message")
    if not isinstance(m, dict):
        return None
    chat = m.get("chat")
    chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
    mid = _int(m.get("message_id"))
    if chat_id is None or mid is None:
        return "update without a numeric chat id and message id"
    frm = m.get("from")
    uid = _int(frm.get("id")) if isinstance(frm, dict) else None
    if uid is None or (isinstance(frm, dict) and frm.get("is_bot") is True):
        return "message without a numeric sender id (or from a bot)"
    text = m.get("text", m.get("caption", ""))
    if not isinstance(text, str):
        return "message text is not a string"
    names = [frm.get(k) for k in ("first_name", "last_name")]
    name = " ".join(n for n in names if isinstance(n, str)) or None
    username = frm.get("username") if isinstance(frm.get("username"), str) else None
    topic = _int(m.get("message_thread_id")) if m.get("is_topic_message") else None
    native = f"{chat_id}/{topic}" if topic is not None else str(chat_id)
    reply = m.get("reply_to_message")
    reply_mid = _int(reply.get("message_id")) if isinstance(reply, dict) else None
    date = _int(m.get("date"))
    atts = []
    photos = m.get("photo")
    if isinstance(photos, list) and photos and isinstance(photos[-1], dict) and isinstance(photos[-1].get("file_id"), str):
        atts.append({"url": f"telegram-file:{photos[-1]['file_id']}", "type": "image/jpeg", "name": "photo.jpg"})
    doc = m.get("document")
    if isinstance(doc, dict) and isinstance(doc.get("file_id"), str):
        a = {"url": f"telegram-file:{doc['file_id']}"}
        for src, dst in (("file_name", "name"), ("mime_type", "type")):
            if isinstance(doc.get(src), str):
                a[dst] = doc[src]
        if _int(doc.get("file_size")) is not None and doc["file_size"] >= 0:
            a["size"] = doc["file_size"]
        atts.append(a)
    return NetMessage(
        id=f"{chat_id}:{mid}", chat=native, text=text, sender=str(uid),
        sender_name=f"{name} (@{username})" if name and username else (name or username),
        room=str(chat_id),
        time=_when(date),
        reply_to=f"{chat_id}:{reply_mid}" if reply_mid is not None else None, attachments=tuple(atts))


class TelegramChannel(NetworkChannel):
    platform = "telegram"
    libraries = (("telegram", "python-telegram-bot"),)

    def __init__(self, *, bot_token: str, api_url: str = DEFAULT_API, poll_timeout: int = 25, **kw) -> None:
        super().__init__(**kw)
        self.bot_token = bot_token
        self.api_url = api_url.rstrip("/")
        self.poll_timeout = poll_timeout
        self.bot = None

    async def connect(self) -> None:
        import warnings

        from telegram import Bot
        from telegram.request import HTTPXRequest

        # getUpdates is read raw on purpose (see the module's docstring); PTB warns about that
        warnings.filterwarnings("ignore", message=r".*do_api_request\(\"getUpdates\"")

        bot = Bot(self.bot_token, base_url=f"{self.api_url}/bot", base_file_url=f"{self.api_url}/file/bot",
                  request=HTTPXRequest(read_timeout=15),
                  get_updates_request=HTTPXRequest(read_timeout=self.poll_timeout + 10))
        await bot.initialize()  # getMe: a wrong token fails here, and is retried with backoff
        self.bot = bot
        self.status(f"telegram: polling as @{bot.username} at {self.api_url}")

    async def disconnect(self) -> None:
        bot, self.bot = self.bot, None
        if bot is not None:
            await bot.shutdown()

    async def pump(self) -> None:
        offset = self.state.cursor if isinstance(self.state.cursor, int) else None
        updates = await self.bot.do_api_request(
            "getUpdates", api_kwargs={"offset": offset, "timeout": self.poll_timeout, "limit": 100,
                                      "allowed_updates": ["message"]},
            read_timeout=self.poll_timeout + 10)
        if not isinstance(updates, list):
            raise ValueError("getUpdates did not answer a list")
        for update in updates:
            uid = _int(update.get("update_id")) if isinstance(update, dict) else None
            if uid is None or (offset is not None and uid < offset):
                continue  # no id to confirm it by, or confirmed already
            try:
                got = parse_update(update)
            except Exception as exc:  # a poison update is refused alone, never stops the polling
                got = f"unreadable update ({type(exc).__name__})"
            if isinstance(got, NetMessage):
                await self.deliver(got)  # raises when dispatch cannot take it: offset stays
            elif isinstance(got, str):
                await self._refuse(NetMessage(id=f"update-{uid}", chat="?", text=""), got)
            offset = uid + 1
            self.state.advance(offset)  # only after dispatch acknowledged (or it was refused)

    def split(self, text: str) -> list[str]:
        return [text[i:i + PART] for i in range(0, len(text), PART)] or [""]

    async def send_part(self, chat: str, text: str, body: dict, index: int) -> None:
        from telegram import ReplyParameters

        if self.bot is None:
            raise ConnectionError("not connected to Telegram yet")
        m = _CHAT.fullmatch(chat)
        if not m:
            raise ValueError(f"not a Telegram chat id: {chat[:40]!r}")
        who = body.get("from")
        if index == 0 and isinstance(who, str) and who:
            text = f"{who}: {text}"
        reply = None
        rt = body.get("reply_to")
        if index == 0 and isinstance(rt, str) and rt.startswith(m.group(1) + ":") and rt.split(":")[1].isdigit():
            reply = ReplyParameters(message_id=int(rt.split(":")[1]), allow_sending_without_reply=True)
        await self.bot.send_message(int(m.group(1)), text,
                                    message_thread_id=int(m.group(2)) if m.group(2) else None,
                                    reply_parameters=reply)

    async def typing(self, chat: str) -> None:
        m = _CHAT.fullmatch(chat)
        if self.bot is not None and m:
            await self.bot.send_chat_action(int(m.group(1)), "typing",
                                            message_thread_id=int(m.group(2)) if m.group(2) else None)

    async def refused(self, msg: NetMessage, reason: str) -> None:
        m = _CHAT.fullmatch(msg.chat)
        if self.bot is not None and m:
            await self.bot.send_message(int(m.group(1)), f"(not delivered: {reason})",
                                        message_thread_id=int(m.group(2)) if m.group(2) else None)
