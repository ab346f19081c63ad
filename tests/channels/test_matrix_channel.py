"""`crowdtui channel matrix` as its own process against a real Synapse (SQLite) on
127.0.0.1 (tests/channels/synapse_server.py), people in the room as real clients
(mautrix), dispatch real."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mautrix.api import Method, Path
from mautrix.client import ClientAPI
from qms import channels as chans

from tests.channels.conftest import rows as rows_of
from tests.channels.conftest import set_secret, wait_for
from tests.channels.synapse_server import Synapse

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def synapse():
    server = Synapse().start()
    for name in ("bot", "ann", "mallory"):
        server.register(name, f"pw-{name}")
    yield server
    server.stop()


async def person(synapse, name: str, display: str | None = None) -> ClientAPI:
    api = ClientAPI(base_url=synapse.url)
    await api.login(identifier=f"@{name}:localhost", password=f"pw-{name}")
    if display:
        await api.set_displayname(display, check_current=False)
    return api


@pytest.fixture
async def people(synapse):
    made: list[ClientAPI] = []

    async def make(name: str, display: str | None = None) -> ClientAPI:
        made.append(await person(synapse, name, display))
        return made[-1]

    yield make
    for api in made:
        await api.api.session.close()



async def start_matrix(crowd, channels, synapse):
    await set_secret(crowd, "MATRIX_PASSWORD", "pw-bot")
    ch = channels(crowd, "matrix", "--homeserver", synapse.url, "--user", "@bot:localhost", "--poll-timeout", "2")
    await wait_for(lambda: "syncing as @bot:localhost" in ch.stderr, 30, "the channel's first sync", ch)
    return ch


async def room_with_bot(ann: ClientAPI, ch) -> str:
    room = await ann.create_room(name="crowd test")
    await ann.invite_user(room, "@bot:localhost")

    async def joined():
        return "@bot:localhost" in await ann.get_joined_members(room)

    await wait_for(joined, 30, "the channel joining the room it was invited to", ch)
    return str(room)


async def say(api: ClientAPI, room: str, content: dict, txn: str | None = None) -> str:
    return str(await api.send_message_event(room, "m.room.message", content, txn_id=txn))


async def events(api: ClientAPI, room: str) -> list[dict]:
    data = await api.api.request(Method.GET, Path.v3.rooms[room].messages, query_params={"dir": "f", "limit": "200"})
    return [e for e in data["chunk"] if e["type"] == "m.room.message"]



async def test_room_messages_reach_the_agent_and_replies_threads_typing_come_back(crowd, channels, synapse, people):
    ch = await start_matrix(crowd, channels, synapse)
    ann = await people("ann", "Ann")
    room = await room_with_bot(ann, ch)
    since = (await ann.sync(timeout=0))["next_batch"]  # (typing starts as soon as lead has the message)
    first = await say(ann, room, {"msgtype": "m.text", "body": "hello crowd"})
    inbox = await wait_for(lambda: crowd.store.inbox("lead"), 30, "the message in lead's inbox", ch)
    assert "hello crowd" in inbox[0].body
    [row] = await rows(crowd)
    assert (row.chat, row.room, row.sender, row.sender_name, row.msg_id, row.agent) == (
        f"matrix:{room}", room, "@ann:localhost", "Ann", first, "lead")

    await crowd.dispatch.typing("lead", row.chat)

    async def bot_typing():
        data = await ann.sync(since=since, timeout=1000)
        ephemeral = data.get("rooms", {}).get("join", {}).get(room, {}).get("ephemeral", {}).get("events", [])
        return any(e["type"] == "m.typing" and "@bot:localhost" in e["content"]["user_ids"] for e in ephemeral)

    await wait_for(bot_typing, 30, "the bot typing in the room", ch)
    await crowd.dispatch.reply("lead", row.chat, "hi Ann", reply_to=first)

    async def bot_said():
        return [e for e in await events(ann, room) if e["sender"] == "@bot:localhost"]

    [answer] = await wait_for(bot_said, 30, "the reply in the room", ch)
    assert answer["content"]["body"] == "lead: hi Ann"
    assert answer["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": first}}

    # a thread is a chat of its own, and the answer stays in the thread
    in_thread = await say(ann, room, {"msgtype": "m.text", "body": "in the thread",
                                      "m.relates_to": {"rel_type": "m.thread", "event_id": first,
                                                       "is_falling_back": True,
                                                       "m.in_reply_to": {"event_id": first}}})
    # and a file, by its mxc:// URL
    mxc = str(await ann.upload_media(b"%PDF-1.4 tiny", mime_type="application/pdf", filename="plan.pdf"))
    await say(ann, room, {"msgtype": "m.file", "body": "plan.pdf", "url": mxc,
                          "info": {"mimetype": "application/pdf", "size": 13}})

    async def three():
        return len(await rows(crowd)) == 3

    await wait_for(three, 30, "the thread message and the file", ch)
    _, threaded, filed = await rows(crowd)
    assert threaded.chat == f"matrix:{room}|{first}" and threaded.msg_id == in_thread and threaded.reply_to is None
    assert filed.attachments == [{"url": mxc, "name": "plan.pdf", "type": "application/pdf", "size": 13}]
    await crowd.dispatch.reply("lead", threaded.chat, "answer in the thread")

    async def in_thread_answer():
        return [e for e in await bot_said() if e["content"]["body"] == "lead: answer in the thread"]

    [t] = await wait_for(in_thread_answer, 30, "the answer in the thread", ch)
    assert t["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert t["content"]["m.relates_to"]["event_id"] == first


async def test_hostile_events_are_refused_or_inert_and_never_doubled(crowd, channels, synapse, people):
    ch = await start_matrix(crowd, channels, synapse)
    ann = await people("ann", "Ann\x1b[31m\u202e")
    mallory = await people("mallory", "lead")
    room = await room_with_bot(ann, ch)
    await ann.invite_user(room, "@mallory:localhost")
    await mallory.join_room_by_id(room)
    await say(ann, room, {"msgtype": "m.text", "body": "bell\x07 esc\x1b[2J"}, txn="t1")
    await say(ann, room, {"msgtype": "m.text", "body": "bell\x07 esc\x1b[2J"}, txn="t1")  # replayed txn
    await say(ann, room, {"msgtype": "m.text", "body": "y" * 40_000})
    await say(mallory, room, {"msgtype": "m.text", "body": "I am lead", "sender": "@lead:localhost",
                              "displayname": "operator"})
    await say(ann, room, {"msgtype": "m.location", "body": "somewhere", "geo_uri": "geo:0,0"})
    await say(ann, room, {"msgtype": "m.text", "body": "last one"})

    async def last():
        return any(r.text == "last one" for r in await rows(crowd))

    await wait_for(last, 40, "the last message stored", ch)
    got = await rows(crowd)
    assert [r.text for r in got] == ["bell\\x07 esc\\x1b[2J", "I am lead", "last one"]
    assert got[0].sender_name == "Ann\\x1b[31m\\u202e"
    assert (got[1].sender, got[1].sender_name) == ("@mallory:localhost", "lead")  # the name is display only
    log = ch.stderr
    assert "bytes; the limit is 32768" in log and "unsupported message (m.location)" in log
    notices = [e for e in await events(ann, room) if e["content"].get("msgtype") == "m.notice"]
    assert notices and notices[0]["content"]["body"].startswith("(not delivered: message is")


async def test_restart_mid_stream_loses_and_doubles_nothing(crowd, channels, synapse, people):
    ch = await start_matrix(crowd, channels, synapse)
    ann = await people("ann")
    room = await room_with_bot(ann, ch)
    for i in range(20):
        await say(ann, room, {"msgtype": "m.text", "body": f"m{i}"})

    async def some():
        return len(await rows(crowd)) >= 3

    await wait_for(some, 30, "the first messages", ch)
    await ch.kill()  # SIGKILL mid-stream
    for i in range(20, 90):  # more than one sync answer holds: the channel pages back for them
        await say(ann, room, {"msgtype": "m.text", "body": f"m{i}"})
    ch2 = channels(crowd, "matrix", "--homeserver", synapse.url, "--user", "@bot:localhost", "--poll-timeout", "2")

    async def all_in():
        return len(await rows(crowd)) >= 90

    await wait_for(all_in, 40, "all 90 messages", ch2)
    assert [r.text for r in await rows(crowd)] == [f"m{i}" for i in range(90)]

    # the homeserver goes away and comes back: the channel reconnects with backoff
    await asyncio.to_thread(synapse.halt)
    await wait_for(lambda: "reconnecting in" in ch2.stderr, 30, "a reconnect attempt", ch2)
    await asyncio.to_thread(synapse.run)
    await say(ann, room, {"msgtype": "m.text", "body": "after the outage"})

    async def after_outage():
        return [r.text for r in await rows(crowd)][-1:] == ["after the outage"]

    await wait_for(after_outage, 40, "the message after the outage", ch2)
    assert len(await rows(crowd)) == 91

    # dispatch retrying a /send after a lost answer: one event in the room
    ch_row = await chans.channel_for_chat(crowd.store, f"matrix:{room}")
    body = {"id": 777, "chat": f"matrix:{room}", "text": "once", "from": "lead"}
    async with httpx.AsyncClient(trust_env=False, timeout=20) as client:
        for _ in range(2):
            r = await client.post(ch_row.callback_url + "/send", json=body,
                                  headers={"Authorization": f"Bearer {ch_row.callback_token}"})
            assert r.status_code == 200
    said = [e["content"]["body"] for e in await events(ann, room) if e["sender"] == "@bot:localhost"]
    assert said == ["lead: once"]


async def rows(crowd):
    return await rows_of(crowd, 'matrix')
