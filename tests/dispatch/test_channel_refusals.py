"""POST /channels/refused: what a channel refused from its network becomes a channel.refused
event (real store, real 127.0.0.1 socket); a flood of one kind is one event with a count."""

from __future__ import annotations

import httpx
import pytest

from crowdtui.dispatch.api import build_app
from crowdtui.dispatch.http_server import LocalServer
from crowdtui.dispatch.service import Dispatch, DispatchConfig

KEY = "register-key-for-refusals"


@pytest.fixture
async def client(store, channel):
    eng = Dispatch(store, config=DispatchConfig(health_interval=60), log=lambda line: None)
    await eng.start()
    server = await LocalServer(build_app(eng, register_key=KEY)).start()
    async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as c:
        r = await c.post("/channels/register", headers={"Authorization": f"Bearer {KEY}"},
                         json={"name": "tg", "callback_url": channel.url, "prefixes": ["tg:"]})
        c.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield c
    await server.stop()
    await eng.stop()


async def test_refusals_become_events_and_floods_are_counted(client, store):
    for i in range(30):
        r = await client.post("/channels/refused", json={"reason": f"message is {40000 + i} bytes; the limit is 32768",
                                                         "id": f"1:{i}", "chat": "tg:1"})
        assert r.status_code == 200
    r = await client.post("/channels/refused", json={"reason": "sender \x1b[2J forged", "chat": "tg:2"})
    assert r.status_code == 200
    events = await store.recent_events(kinds="channel.refused")
    assert [(e.subject, e.detail["refused"]) for e in events] == [("tg", 1), ("tg", 1)]
    assert events[0].detail["reason"] == "message is 40000 bytes; the limit is 32768"
    assert events[1].detail["reason"] == "sender \\x1b[2J forged"  # stored inert


async def test_bad_refusal_bodies_are_refused(client, store):
    for body in ({}, {"reason": ""}, {"reason": 3}, {"reason": "x", "evil": 1}, [1], {"reason": "x" * 301}):
        r = await client.post("/channels/refused", json=body)
        assert r.status_code == 422 and "reason" in r.json()["error"]
    r = await client.post("/channels/refused", json={"reason": "x"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert await store.recent_events(kinds="channel.refused") == []
