"""Inbound chat messages as a channel posts them: checking the HTTP body, then storing it.

Flow: the channel API checks a body (:func:`parse_inbound`) and calls
:func:`store_inbound` (one transaction, :mod:`qms.inbound`; the channel is answered 200
only after it committed). The router (:mod:`crowdtui.dispatch.router`) then routes the
stored rows; held chats wait for the operator (:mod:`crowdtui.dispatch.onboarding`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from qms import inbound as inbound_rows
from qms.channels import Channel
from qms.errors import InvalidInput
from qms.inbound import Arrival, StoredInbound, get_inbound, list_inbound

MAX_ID = 200
MAX_CHAT = 200
MAX_NAME = 200
MAX_TEXT = 32 * 1024
MAX_ATTACHMENTS = 20

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LABEL_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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
    return await inbound_rows.store_arrivals(store, arrivals(items), now=now)


def arrivals(items: list[tuple[Channel, InboundMsg]]) -> list[Arrival]:
    """The rows to store for checked messages. A channel may bring in only chats under
    its own prefixes."""
    for channel, msg in items:
        if not channel.owns(msg.chat):
            raise PermissionError(
                f"chat {msg.chat!r} is not one of channel {channel.name!r}'s prefixes "
                f"({', '.join(channel.prefixes)}); register the prefix first"
            )
    return [Arrival(channel=channel.name, platform=channel.platform, msg_id=msg.id, chat=msg.chat, text=msg.text,
                    sender=msg.sender, sender_name=msg.sender_name, room=msg.room, sent_at=msg.time,
                    reply_to=msg.reply_to, attachments=msg.attachments)
            for channel, msg in items]


__all__ = ["InboundMsg", "MAX_ATTACHMENTS", "MAX_CHAT", "MAX_ID", "MAX_NAME", "MAX_TEXT", "StoredInbound",
           "arrivals", "get_inbound", "list_inbound", "parse_inbound", "store_inbound", "store_inbound_many"]
