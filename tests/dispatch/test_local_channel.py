"""`crowdtui channel local` as a component: terminal lines out, and its web page, against a
real dispatch on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from crowdtui.dispatch.api import build_app
from crowdtui.dispatch.http_server import LocalServer
from crowdtui.dispatch.local_channel import LocalChannel
from crowdtui.dispatch.routes import add_route
from crowdtui.dispatch.service import Dispatch, DispatchConfig

KEY = "k-local"


@pytest.fixture
async def setup(store):
    eng = Dispatch(store, config=DispatchConfig(health_interval=60), log=lambda line: None)
    await eng.start()
    server = await LocalServer(build_app(eng, register_key=KEY)).start()
    outs: list[str] = []
    status: list[str] = []
    ch = LocalChannel(dispatch_url=server.url, register_key=KEY, user="ann", out=outs.append, status=status.append)
    await ch.start()
    yield eng, ch, outs, status
    await ch.close()
    await server.stop()
    await eng.stop()


async def until(predicate, timeout=30.0):
    for _ in range(int(timeout / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_terminal_lines_and_the_web_page(setup, store):
    eng, ch, outs, status = setup
    assert status[0].startswith("connected to http://127.0.0.1:") and "as chat local:ann" in status[0]
    await add_route(store, "platform=local", "lead", actor="operator", now=0)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        page = await client.get(ch.web_url)
        assert page.status_code == 200 and "chat local:ann" in page.text
        base = ch.web_url.split("/?k=")[0]
        assert (await client.get(base + "/?k=wrong")).status_code == 403
        assert (await client.post(base + "/say?k=wrong", json={"text": "x"})).status_code == 403
        assert (await client.post(ch.web_url.replace("/?", "/say?"), json={"text": ""})).status_code == 422
        r = await client.post(ch.web_url.replace("/?", "/say?"), json={"text": "hi from the page"})
        assert r.status_code == 200 and r.json()["ok"] is True

        async def in_inbox():
            return await store.inbox("lead")

        await until(in_inbox)
        await eng.reply("lead", "local:ann", "hello Ann\nsecond line")

        async def printed():
            return "lead: hello Ann\n    second line" in outs

        await until(printed)
        got = (await client.get(ch.web_url.replace("/?", "/messages?") + "&after=0")).json()["messages"]
    assert [(m["from"], m["text"]) for m in got] == [("ann", "hi from the page"), ("lead", "hello Ann\nsecond line")]
    assert any(s == "(lead is typing…)" for s in status)


async def test_callbacks_without_the_channels_token_are_refused(setup):
    eng, ch, outs, status = setup
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        r = await client.post(ch._server.url + "/send", json={"chat": "local:ann", "text": "spoof", "from": "lead"})
    assert r.status_code == 401 and outs == []
