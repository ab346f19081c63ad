"""Hostile input from the networks, at the channels' parsers (crowdtui/channels): Telegram
updates, Matrix events and raw mails built from hostile values. Each is either skipped,
refused with a reason, or becomes a message; a message either is refused by
``protocol_body`` or becomes a body that dispatch's own check (``parse_inbound``) accepts,
with no control character left in it. Nothing raises."""

from __future__ import annotations

from hypothesis import strategies as st

from crowdtui.channels.base import NetMessage, Refused, protocol_body
from crowdtui.channels.mail import parse_mail
from crowdtui.channels.matrix import parse_event
from crowdtui.channels.telegram import parse_update
from crowdtui.dispatch.inbound import parse_inbound

from crowdtui.text_safety import inert

from .strategies import HOSTILE_TEXT, HOSTILE_VALUE, examples


def _fields(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys), HOSTILE_VALUE, max_size=len(keys))


TG_MESSAGE = st.builds(
    lambda good, bad: {**good, **bad},
    st.fixed_dictionaries({"message_id": st.integers(1, 10), "date": st.integers(0, 2**40),
                           "chat": st.fixed_dictionaries({"id": st.integers(-10**13, 10**13)}),
                           "from": st.fixed_dictionaries({"id": st.integers(1, 10**10),
                                                          "first_name": HOSTILE_TEXT}),
                           "text": HOSTILE_TEXT}),
    _fields(["message_id", "date", "chat", "from", "text", "caption", "photo", "document", "reply_to_message",
             "message_thread_id", "is_topic_message"]))
TG_UPDATE = st.one_of(st.builds(lambda m: {"update_id": 1, "message": m}, TG_MESSAGE),
                      st.dictionaries(st.sampled_from(["update_id", "message", "edited_message"]), HOSTILE_VALUE))

MX_EVENT = st.builds(
    lambda good, content, bad: {**good, "content": {**good["content"], **content}, **bad},
    st.fixed_dictionaries({"type": st.just("m.room.message"), "sender": st.just("@ann:localhost"),
                           "event_id": st.just("$e1"), "origin_server_ts": st.integers(-2**63, 2**63),
                           "content": st.fixed_dictionaries({"msgtype": st.sampled_from(
                               ["m.text", "m.file", "m.image", "m.emote", "m.location"]), "body": HOSTILE_TEXT})}),
    _fields(["body", "msgtype", "url", "info", "filename", "m.relates_to", "sender"]),
    _fields(["sender", "event_id", "content", "origin_server_ts", "type"]))


def _header_value(v) -> str:
    return str(v)[:300]


MAIL = st.builds(
    lambda headers, body: ("".join(f"{k}: {_header_value(v)}\r\n" for k, v in headers.items()) + "\r\n"
                           + str(body)).encode("utf-8", "surrogatepass"),
    st.dictionaries(st.sampled_from(["From", "Message-ID", "References", "In-Reply-To", "Subject", "Date",
                                     "Content-Type", "Content-Transfer-Encoding", "MIME-Version"]),
                    st.one_of(HOSTILE_TEXT, st.sampled_from(
                        ["ann@example.test", "<a@b>", "a@b, c@d", "multipart/mixed; boundary=x", "base64",
                         "Thu, 01 Jan 1970 00:00:00 +0000", "=?utf-8?b?w6k=?="]))),
    HOSTILE_TEXT)


def _check(got) -> None:
    assert got is None or isinstance(got, (str, NetMessage)), got
    if not isinstance(got, NetMessage):
        return
    try:
        body = protocol_body("net:", got)
    except Refused:
        return
    parsed = parse_inbound(body)  # raises if dispatch would refuse what the channel built
    assert inert(parsed.text) == parsed.text, repr(parsed.text)  # nothing left to neutralise
    for label in (parsed.sender, parsed.sender_name, parsed.room, parsed.id, parsed.chat, parsed.reply_to):
        assert inert(label or "", multiline=False) == (label or ""), repr(label)


def test_telegram_updates():
    for update in examples(TG_UPDATE, 300):
        _check(parse_update(update))


def test_matrix_events():
    for event in examples(MX_EVENT, 300):
        _check(parse_event("!room:localhost", event, "@bot:localhost", {}))


def test_raw_mails():
    for raw in examples(MAIL, 300):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue  # (surrogates: not bytes a server would hand over as they are)
        got = parse_mail(raw, uid="1-1", own="bot@example.test")
        _check(got if isinstance(got, str) else got[0])
