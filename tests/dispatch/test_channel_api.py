"""The channel HTTP protocol on a real 127.0.0.1 socket: register, inbound, bad input refused."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from crowdtui.dispatch.api import MAX_BODY, build_app
from crowdtui.dispatch.http_server import LocalServer
from crowdtui.dispatch.routes import add_route
from crowdtui.dispatch.service import Dispatch, DispatchConfig

KEY = "register-key-for-tests"


@pytest.fixture
async def api(store, channel):
    eng = Dispatch(store, config=DispatchConfig(health_interval=60), log=lambda line: None)
    await eng.start()
    server = await LocalServer(build_app(eng, register_key=KEY)).start()
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
        client.dispatch = eng  # type: ignore[attr-defined]
        yield client
    await server.stop()
    await eng.stop()


async def register(client, channel, **over):
    body = {"name": "local", "callback_url": channel.url, "prefixes": ["local:"], **over}
    r = await client.post("/channels/register", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    return r.json()["token"]


async def stored_count(store) -> int:
    return (await store.query("SELECT COUNT(*) FROM engine_inbound"))[0][0]


async def test_health(api):
    r = await api.get("/health")
    assert r.status_code == 200 and r.json()["ok"] is True


async def test_message_in_reply_out_over_real_sockets(api, store, channel):
    token = await register(api, channel, callback_token="cb")
    await add_route(store, "platform=local", "lead", actor="operator", now=0)
    body = {"id": "m1", "chat": "local:ann", "sender": "ann", "sender_name": "Ann", "text": "hi",
            "time": "2026-11-22T04:00:00Z", "reply_to": None,
            "attachments": [{"url": "https://files.example/a.png", "name": "a.png", "type": "image/png",
                             "size": 10}]}
    r = await api.post("/channels/inbound", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["duplicate"] is False
    r = await api.post("/channels/inbound", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["duplicate"] is True
    for _ in range(1500):  # generous: the router is woken at once, a loaded machine may lag
        if await store.inbox("lead"):
            break
        await asyncio.sleep(0.02)
    [m] = await store.inbox("lead")
    assert "attachment: a.png https://files.example/a.png" in m.body
    await api.dispatch.reply("lead", "local:ann", "hello Ann")
    await asyncio.wait_for(channel.got.wait(), 30)
    assert channel.sent[0]["text"] == "hello Ann" and channel.sent[0]["chat"] == "local:ann"
    assert channel.auth[0] == "Bearer cb"


@pytest.mark.parametrize(
    "headers, status, says",
    [
        ({}, 401, "missing bearer token"),
        ({"Authorization": "Bearer nope"}, 401, "unknown or expired channel token"),
        ({"Authorization": "Basic abc"}, 401, "missing bearer token"),
    ],
)
async def test_inbound_without_a_good_token_is_refused(api, store, channel, headers, status, says):
    await register(api, channel)
    r = await api.post("/channels/inbound", json={"id": "1", "chat": "local:a", "text": "x"}, headers=headers)
    assert r.status_code == status and says in r.json()["error"]
    assert await stored_count(store) == 0


BAD_BODIES = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2]", 422, "must be a JSON object"),
    (json.dumps({"chat": "local:a", "text": "x"}).encode(), 422, "'id' is missing"),
    (json.dumps({"id": "1", "text": "x"}).encode(), 422, "'chat' is missing"),
    (json.dumps({"id": "1", "chat": "local:a"}).encode(), 422, "'text' is missing"),
    (json.dumps({"id": "1", "chat": "local:a", "text": 5}).encode(), 422, "'text' must be a string"),
    (json.dumps({"id": ["1"], "chat": "local:a", "text": "x"}).encode(), 422, "'id' must be a string"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "x", "sender": {}}).encode(), 422, "'sender' must be"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "x", "evil": 1}).encode(), 422, "unknown field 'evil'"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "x", "attachments": "a"}).encode(), 422, "attachments"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "x", "attachments": [{"name": "n"}]}).encode(),
     422, "'url' string"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "\x1b[2Jx"}).encode(), 422, "control characters"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "   "}).encode(), 422, "nothing to deliver"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "x" * 40000}).encode(), 422, "over 32768 bytes"),
    (json.dumps({"id": "1", "chat": "slack:a", "text": "x"}).encode(), 403, "not under this channel"),
    (json.dumps({"id": "1", "chat": "local:a", "text": "x" * (MAX_BODY + 10)}).encode(), 413, "limit"),
]


@pytest.mark.parametrize("raw, status, says", BAD_BODIES, ids=[b[2] for b in BAD_BODIES])
async def test_bad_inbound_bodies_get_a_clear_4xx_and_nothing_is_stored(api, store, channel, raw, status, says):
    token = await register(api, channel)
    r = await api.post("/channels/inbound", content=raw,
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert says in err and "\n" not in err
    assert await stored_count(store) == 0


async def test_oversized_body_without_content_length_is_cut_off(api, store, channel):
    token = await register(api, channel)

    async def chunks():
        for _ in range(MAX_BODY // 1024 + 10):
            yield b"x" * 1024

    r = await api.post("/channels/inbound", content=chunks(), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413
    assert await stored_count(store) == 0


@pytest.mark.parametrize(
    "over, says",
    [
        ({"name": "Bad Name"}, "channel name"),
        ({"callback_url": "file:///etc/passwd"}, "not an http(s) URL"),
        ({"prefixes": []}, "'prefixes' must be"),
        ({"prefixes": ["has space"]}, "'prefixes' must be"),
        ({"extra": 1}, "unknown field"),
    ],
)
async def test_bad_registrations_are_refused(api, store, channel, over, says):
    body = {"name": "local", "callback_url": channel.url, "prefixes": ["local:"], **over}
    r = await api.post("/channels/register", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 422 and says in r.json()["error"]
    assert (await store.query("SELECT COUNT(*) FROM engine_channels"))[0][0] == 0


@pytest.mark.parametrize("name", ["operator", "lead"])
async def test_a_channel_cannot_take_the_name_of_the_operator_or_an_agent(api, store, channel, name):
    body = {"name": name, "callback_url": channel.url, "prefixes": ["x:"]}
    r = await api.post("/channels/register", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 409 and "pick another name" in r.json()["error"]
    assert (await store.query("SELECT COUNT(*) FROM engine_channels"))[0][0] == 0


async def test_register_needs_the_key_and_prefixes_cannot_overlap(api, store, channel):
    body = {"name": "local", "callback_url": channel.url, "prefixes": ["local:"]}
    r = await api.post("/channels/register", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "register key" in r.json()["error"]
    await register(api, channel)
    r = await api.post("/channels/register", json={**body, "name": "other", "prefixes": ["local:x"]},
                       headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 409 and "overlaps" in r.json()["error"]


async def test_reregistering_replaces_the_token_and_deregister_ends_it(api, channel):
    old = await register(api, channel)
    new = await register(api, channel)
    msg = {"id": "1", "chat": "local:a", "text": "x"}
    r = await api.post("/channels/inbound", json=msg, headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401
    r = await api.post("/channels/deregister", headers={"Authorization": f"Bearer {new}"})
    assert r.status_code == 200
    r = await api.post("/channels/inbound", json=msg, headers={"Authorization": f"Bearer {new}"})
    assert r.status_code == 401


async def test_refusals_become_events_and_floods_are_counted(api, store, channel):
    """POST /channels/refused: what a channel refused from its network is a channel.refused
    event; a flood of one kind of reason is one event, the rest counted."""
    token = await register(api, channel)
    auth = {"Authorization": f"Bearer {token}"}
    for i in range(30):
        r = await api.post("/channels/refused", headers=auth,
                           json={"reason": f"message is {40000 + i} bytes; the limit is 32768", "id": f"1:{i}",
                                 "chat": "local:1"})
        assert r.status_code == 200
    r = await api.post("/channels/refused", json={"reason": "sender \x1b[2J forged", "chat": "local:2"}, headers=auth)
    assert r.status_code == 200
    from tests.waiting import wait_for

    async def two():  # (the events are written just after the answer)
        return len(await store.recent_events(kinds="channel.refused")) >= 2

    await wait_for(two, 10, "two channel.refused events")
    await asyncio.sleep(0.2)  # no third one comes: the flood is counted, not recorded one by one
    events = await store.recent_events(kinds="channel.refused")
    assert [(e.subject, e.detail["refused"]) for e in events] == [("local", 1), ("local", 1)]
    assert events[0].detail["reason"] == "message is 40000 bytes; the limit is 32768"
    assert events[1].detail["reason"] == "sender \\x1b[2J forged"  # stored inert


async def test_bad_refusal_bodies_are_refused(api, store, channel):
    auth = {"Authorization": f"Bearer {await register(api, channel)}"}
    for body in ({}, {"reason": ""}, {"reason": 3}, {"reason": "x", "evil": 1}, [1], {"reason": "x" * 301}):
        r = await api.post("/channels/refused", json=body, headers=auth)
        assert r.status_code == 422 and "reason" in r.json()["error"]
    r = await api.post("/channels/refused", json={"reason": "x"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert await store.recent_events(kinds="channel.refused") == []
