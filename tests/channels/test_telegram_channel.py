"""`crowdtui channel telegram` as its own process, python-telegram-bot talking to a stand-in
of the Bot API on 127.0.0.1, dispatch real (store, routes, outbound with retries)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest
from qms import channels as chans

from tests.channels.conftest import KEY, REPO
from tests.channels.conftest import rows as rows_of
from tests.channels.conftest import set_secret, wait_for
from tests.standins.telegram import TelegramStandIn

TOKEN = "123456:test-token"
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def api():
    standin = TelegramStandIn(TOKEN).start()
    yield standin
    standin.stop()


async def start_telegram(crowd, channels, api, **kw):
    await set_secret(crowd, "TELEGRAM_BOT_TOKEN", TOKEN)
    return channels(crowd, "telegram", "--api-url", f"http://127.0.0.1:{api.port}", "--poll-timeout", "2", **kw)




async def test_a_message_reaches_the_agent_and_its_reply_the_chat(crowd, channels, api):
    ch = await start_telegram(crowd, channels, api)
    up = api.post(5001, 77, "hello crowd", first_name="Ann")
    mid = up["message"]["message_id"]
    inbox = await wait_for(lambda: crowd.store.inbox("lead"), 30, "the message in lead's inbox", ch)
    assert "hello crowd" in inbox[0].body
    [row] = await rows(crowd)
    assert (row.chat, row.room, row.sender, row.sender_name, row.msg_id) == (
        "telegram:5001", "5001", "77", "Ann", f"5001:{mid}")
    assert row.agent == "lead"

    # the agent answers the way the hub's reply tool does: through dispatch's outbound queue
    await crowd.dispatch.typing("lead", "telegram:5001")
    await crowd.dispatch.reply("lead", "telegram:5001", "hi Ann", reply_to=row.msg_id)
    sent = await wait_for(lambda: list(api.sent), 30, "the reply on Telegram")
    assert sent[0]["text"] == "lead: hi Ann" and sent[0]["chat"]["id"] == 5001
    assert sent[0]["reply_to_message"]["message_id"] == mid and sent[0]["reply_to_message"]["text"] == "hello crowd"
    await wait_for(lambda: api.actions, 10, "sendChatAction")
    assert api.actions[0] == {"chat_id": 5001, "action": "typing"}

    # a long reply is split under Telegram's limit, in order
    await crowd.dispatch.reply("lead", "telegram:5001", "x" * 9000)
    await wait_for(lambda: len(api.sent) == 4, 30, "the long reply in three parts")
    assert [len(m["text"]) for m in api.sent[1:]] == [4006, 4000, 1000]

    # SIGTERM: the channel deregisters and exits 0
    assert await ch.kill(signal.SIGTERM) == 0
    [row] = [c for c in await chans.list_channels(crowd.store, include_down=True) if c.name == "telegram"]
    assert row.state == "down"


async def test_hostile_updates_are_refused_or_inert_and_never_doubled(crowd, channels, api):
    ch = await start_telegram(crowd, channels, api)
    ok = api.post(5002, 78, "bell\x07 and \x1b[2J clear\u202e", first_name="\x1b[31mlead\x00")
    api.push(ok)  # the very same update again (same update_id)
    api.push({"message": ok["message"]})  # the same message under a new update id
    api.post(5002, 78, "y" * 40_000)  # oversized
    api.push({"message": {"message_id": 9001, "date": 0, "chat": {"id": 5002, "type": "private"},
                          "from": {"id": "lead", "is_bot": False, "first_name": "x"}, "text": "forged id"}})
    api.push({"message": {"message_id": 9002, "date": 0, "chat": {"id": 5002, "type": "private"},
                          "text": "no sender at all"}})
    api.push({"message": {"message_id": 9003, "date": 0, "chat": {"id": 5002, "type": "private"},
                          "from": {"id": 4242, "is_bot": True, "first_name": "bot"}, "text": "from a bot"}})
    api.push({"message": {"message_id": "9004", "chat": "5002", "from": {"id": 1}, "text": "types wrong"}})
    last = api.post(5002, 78, "last one")

    async def all_seen():
        return any(r.msg_id == f"5002:{last['message']['message_id']}" for r in await rows(crowd))

    await wait_for(all_seen, 30, "the last message stored", ch)
    got = await rows(crowd)
    assert [r.text for r in got] == ["bell\\x07 and \\x1b[2J clear\\u202e", "last one"]
    assert got[0].sender_name == "\\x1b[31mlead\\x00" and got[0].sender == "78"
    log = ch.stderr
    assert "bytes; the limit is 32768" in log
    assert log.count("message without a numeric sender id") == 3 and "without a numeric chat id" in log
    told = [m["text"] for m in api.sent]
    assert any(t.startswith("(not delivered: message is") for t in told)
    want = {"message is 40000 bytes; the limit is 32768 bytes, split it",
            "message without a numeric sender id (or from a bot)"}  # the second: three refused, one event

    async def recorded():
        events = await crowd.store.recent_events(kinds="channel.refused", subject="telegram")
        return events if want <= {e.detail["reason"] for e in events} else None

    events = await wait_for(recorded, 10, "the refusals as channel.refused events", ch)
    assert sum(1 for e in events if e.detail["reason"].startswith("message without a numeric sender")) == 1

    # the channel's callback takes only dispatch's token
    ch_row = await chans.channel_for_chat(crowd.store, "telegram:5002")
    async with httpx.AsyncClient(trust_env=False) as client:
        r = await client.post(ch_row.callback_url + "/send", json={"id": 1, "chat": "telegram:5002", "text": "spoof"})
    assert r.status_code == 401 and not any("spoof" in t for t in told)


async def test_restart_mid_stream_loses_and_doubles_nothing(crowd, channels, api):
    ch = await start_telegram(crowd, channels, api)
    for i in range(40):
        api.post(5003, 79, f"m{i}")

    async def some():
        return len(await rows(crowd)) >= 5

    await wait_for(some, 30, "the first messages", ch)
    await ch.kill()  # SIGKILL, mid-stream
    api.fail_polls = 3  # and Telegram is down for a while: the channel backs off and reconnects
    for i in range(40, 50):
        api.post(5003, 79, f"m{i}")
    ch2 = await start_telegram(crowd, channels, api)

    async def all_in():
        return len(await rows(crowd)) >= 50

    await wait_for(all_in, 40, "all 50 messages", ch2)
    assert [r.text for r in await rows(crowd)] == [f"m{i}" for i in range(50)]
    assert "reconnecting in" in ch2.stderr
    ch_row = await chans.channel_for_chat(crowd.store, "telegram:5003")
    async with httpx.AsyncClient(trust_env=False, timeout=20) as client:
        health = (await client.get(ch_row.callback_url + "/health")).json()
    assert health["connected"] is True and health["delivered"] > 0

    # dispatch retrying a /send after a lost answer: the network sees it once
    ch_row = await chans.channel_for_chat(crowd.store, "telegram:5003")
    body = {"id": 999, "chat": "telegram:5003", "text": "once", "from": "lead"}
    async with httpx.AsyncClient(trust_env=False, timeout=20) as client:
        for _ in range(2):
            r = await client.post(ch_row.callback_url + "/send", json=body,
                                  headers={"Authorization": f"Bearer {ch_row.callback_token}"})
            assert r.status_code == 200
    assert [m["text"] for m in api.sent].count("lead: once") == 1


async def rows(crowd):
    return await rows_of(crowd, 'telegram')


async def test_clear_errors_without_a_secret_or_a_serve(workspace, tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("CROWD_SECRET_KEY", None)

    def run(*args: str, stdin: str | None = None):
        return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), *args],
                              input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO, env=env)

    r = await asyncio.to_thread(run, "secret", "set", "OTHER", stdin="x\n")
    assert r.returncode == 0, r.stderr
    r = await asyncio.to_thread(run, "channel", "telegram")
    assert r.returncode != 0 and "secret TELEGRAM_BOT_TOKEN is not set; run `crowdtui secret set TELEGRAM_BOT_TOKEN`" in r.stderr
    r = await asyncio.to_thread(run, "secret", "set", "TELEGRAM_BOT_TOKEN", stdin="1:t\n")
    r = await asyncio.to_thread(run, "channel", "telegram")
    assert r.returncode != 0 and "no crowdtui serve runs for this workspace" in r.stderr
    r = await asyncio.to_thread(run, "channel", "email", "--address", "a@b.c", "--imap", "h:x", "--smtp", "h")
    assert r.returncode != 0 and "bad server 'h:x': use HOST or HOST:PORT" in r.stderr


async def test_the_channel_follows_a_restarted_serve(crowd, channels, api):
    """Started from serve.json, the channel follows the serve that replaced it (new port, new key)."""
    from crowdtui.dispatch.serve import info_path, write_private
    from crowdtui.dispatch.serve_lock import ServeLock

    lock = ServeLock(crowd.ws.crowd_dir / "run" / "serve.lock")
    lock.acquire()  # this test plays the running serve
    try:
        write_private(info_path(crowd.ws), {"url": crowd.url, "register_key": KEY, "pid": os.getpid()})
        ch = await start_telegram(crowd, channels, api, serve_json=True)
        api.post(5004, 80, "before")
        await wait_for(lambda: rows(crowd), 30, "the first message", ch)
        await crowd.restart_api("k-after-restart")
        write_private(info_path(crowd.ws), {"url": crowd.url, "register_key": "k-after-restart", "pid": os.getpid()})
        api.post(5004, 80, "after")

        async def both():
            return [r.text for r in await rows(crowd)] == ["before", "after"]

        await wait_for(both, 40, "the message after the restart", ch)
        assert f"dispatch is now at {crowd.url}" in ch.stderr
        await crowd.dispatch.reply("lead", "telegram:5004", "still here")
        await wait_for(lambda: [m for m in api.sent if m["text"] == "lead: still here"], 30, "the reply", ch)
    finally:
        lock.release()
