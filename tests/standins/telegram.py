"""A stand-in of the Telegram Bot API (the real one cannot be reached here), following the
documented shapes: ``POST /bot<token>/<method>`` with JSON or form fields, answered
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description"}``.

- ``getMe`` -> a bot User.
- ``getUpdates(offset, limit, timeout)``: long polling. Updates below ``offset`` are
  confirmed and forgotten; the call waits up to ``timeout`` seconds for one to arrive.
- ``sendMessage(chat_id, text, message_thread_id?, reply_parameters?)`` -> the Message;
  empty text or over 4096 characters is a 400 as on the real API.
- ``sendChatAction(chat_id, action)`` -> true.

Tests put messages in with :meth:`TelegramStandIn.post` (a user writing to the bot) or
:meth:`push` (any raw update, hostile ones included), and read :attr:`sent` /
:attr:`actions`. ``fail_polls`` answers the next N getUpdates with 502 (an outage).
"""

from __future__ import annotations

import json
import re
import time

from tests.standins.server import Reply, StandIn

BOT = {"id": 4242, "is_bot": True, "first_name": "crowd", "username": "crowd_bot"}


def _ok(result) -> Reply:
    return Reply.json(200, {"ok": True, "result": result})


def _fail(code: int, description: str) -> Reply:
    return Reply.json(code, {"ok": False, "error_code": code, "description": description})


def _arg(body: dict, key: str, default=None):
    """A field as sent: JSON bodies carry values, form bodies JSON-encode non-strings."""
    value = body.get(key, default)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class TelegramStandIn(StandIn):
    name = "telegram"

    def __init__(self, token: str, **kw) -> None:
        super().__init__(**kw)
        self.token = token
        self.pending: list[dict] = []
        self.next_update = 700_000
        self.next_message = 1
        self.sent: list[dict] = []  # Messages the bot sent
        self.messages: dict[tuple[int, int], dict] = {}  # (chat id, message id) -> Message, both ways
        self.actions: list[dict] = []
        self.fail_polls = 0
        self.polls = 0
        self.closed = False

    # --- the test's side -----------------------------------------------------------------

    def push(self, update: dict) -> dict:
        with self.changed:
            if "update_id" not in update:
                update = {"update_id": self.next_update, **update}
                self.next_update += 1
            self.pending.append(update)
            m = update.get("message")
            if isinstance(m, dict) and isinstance(m.get("chat"), dict):
                self.messages[(m["chat"].get("id"), m.get("message_id"))] = m
            self.changed.notify_all()
        return update

    def post(self, chat_id: int, user_id: int, text: str, *, first_name: str = "Ann", **extra) -> dict:
        """A user writes ``text`` to the bot in ``chat_id``; returns the update."""
        with self.lock:
            mid = self.next_message
            self.next_message += 1
        message = {"message_id": mid, "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                   "from": {"id": user_id, "is_bot": False, "first_name": first_name}, "text": text, **extra}
        return self.push({"message": message})

    def stop(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        super().stop()

    # --- the API ------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: dict) -> Reply:
        m = re.fullmatch(r"/bot([^/]+)/(\w+)", path)
        if not m:
            return _fail(404, "Not Found")
        if m.group(1) != self.token:
            return _fail(401, "Unauthorized")
        name = m.group(2).lower()
        if name == "getme":
            return _ok(BOT)
        if name == "getupdates":
            return self._get_updates(body)
        if name == "sendmessage":
            return self._send_message(body)
        if name == "sendchataction":
            with self.lock:
                self.actions.append({"chat_id": _arg(body, "chat_id"), "action": _arg(body, "action")})
            return _ok(True)
        return _fail(404, "Not Found: method not found")

    def _get_updates(self, body: dict) -> Reply:
        offset = _arg(body, "offset")
        limit = int(_arg(body, "limit", 100) or 100)
        timeout = min(float(_arg(body, "timeout", 0) or 0), 5.0)  # bounded for tests
        deadline = time.monotonic() + timeout
        with self.changed:
            self.polls += 1
            if self.fail_polls:
                self.fail_polls -= 1
                return _fail(502, "Bad Gateway")
            while True:
                if offset is not None:
                    self.pending = [u for u in self.pending if u["update_id"] >= int(offset)]
                if self.pending or self.closed:
                    return _ok(self.pending[:limit])
                left = deadline - time.monotonic()
                if left <= 0:
                    return _ok([])
                self.changed.wait(left)

    def _send_message(self, body: dict) -> Reply:
        chat_id = _arg(body, "chat_id")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _fail(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _fail(400, "Bad Request: message is too long")
        with self.changed:
            message = {"message_id": self.next_message, "date": int(time.time()), "from": BOT,
                       "chat": {"id": int(chat_id), "type": "private"}, "text": text}
            self.next_message += 1
            thread = _arg(body, "message_thread_id")
            if thread is not None:
                message["message_thread_id"] = int(thread)
            reply = _arg(body, "reply_parameters")
            if isinstance(reply, dict):
                original = self.messages.get((int(chat_id), reply.get("message_id")))
                if original is None and not reply.get("allow_sending_without_reply"):
                    return _fail(400, "Bad Request: message to be replied not found")
                if original is not None:
                    message["reply_to_message"] = original
            self.messages[(int(chat_id), message["message_id"])] = message
            self.sent.append(message)
            self.changed.notify_all()
        return _ok(message)
