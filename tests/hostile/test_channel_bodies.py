"""Hostile bodies at the engine's channel HTTP API (real 127.0.0.1 socket): always a 2xx or a
4xx with one line, never a 5xx; refused bodies store nothing; accepted ones are stored intact."""

from __future__ import annotations

import json

import httpx
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from crowdtui.dispatch.api import build_app
from crowdtui.dispatch.http_server import LocalServer
from crowdtui.dispatch.service import Dispatch, DispatchConfig

from .strategies import HOSTILE_TEXT, HOSTILE_VALUE, examples, one_line

KEY = "hostile-register-key"
FIELDS = ["id", "chat", "text", "sender", "attachments", "thread", "reply_to", "platform", "evil", "__proto__"]

INBOUND = st.one_of(
    # a well-formed frame with one or more hostile fields
    st.builds(lambda base, bad: {**base, **bad},
              st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8), "chat": st.just("local:a"),
                                     "text": st.just("hi")}),
              st.dictionaries(st.sampled_from(FIELDS), HOSTILE_VALUE, min_size=1, max_size=3)),
    st.dictionaries(st.sampled_from(FIELDS), HOSTILE_VALUE, max_size=5),
    HOSTILE_VALUE,
).map(lambda v: json.dumps(v).encode())
RAW = st.one_of(st.binary(max_size=200), HOSTILE_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
REGISTER = st.builds(lambda base, bad: {**base, **bad},
                     st.just({"name": "other", "callback_url": "http://127.0.0.1:9/", "prefixes": ["x:"]}),
                     st.dictionaries(st.sampled_from(["name", "callback_url", "prefixes", "platform",
                                                      "callback_token", "extra"]),
                                     HOSTILE_VALUE, min_size=1, max_size=2))


async def _ok(request):
    return JSONResponse({"ok": True})


async def test_hostile_channel_bodies_get_clear_4xx_and_lose_nothing(workspace):
    from qms import Store

    store = await Store.open(workspace.db_path)
    await store.upsert_agent("lead", path="lead", tier=0)
    callback = LocalServer(Starlette(routes=[Route("/send", _ok, methods=["POST"]),
                                             Route("/health", _ok, methods=["GET"]),
                                             Route("/typing", _ok, methods=["POST"])]))
    await callback.start()
    eng = Dispatch(store, config=DispatchConfig(health_interval=60), log=lambda line: None)
    await eng.start()
    server = await LocalServer(build_app(eng, register_key=KEY)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as http:
            r = await http.post("/channels/register", headers={"Authorization": f"Bearer {KEY}"},
                                json={"name": "local", "callback_url": callback.url, "prefixes": ["local:"]})
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()['token']}", "Content-Type": "application/json"}
            r = await http.post("/channels/inbound", headers=auth,
                                json={"id": "seed", "chat": "local:a", "text": "keep me"})
            assert r.status_code == 200, r.text
            # what was stored (the routing columns status/agent/detail move on as the router works)
            stored = "SELECT seq, channel, msg_id, chat, platform, room, sender, sender_name, text, sent_at, reply_to, attachments, received_at FROM engine_inbound"
            rows_before = await store.query(stored)

            accepted = 0
            for body in examples(INBOUND, 80) + examples(RAW, 30):
                r = await http.post("/channels/inbound", headers=auth, content=body)
                assert r.status_code < 500, (body[:200], r.status_code, r.text[:300])
                if r.status_code >= 400:
                    err = r.json()["error"]
                    assert one_line(err) and len(err) < 1000, (body[:200], err[:300])
                else:
                    accepted += 1
            for body in examples(REGISTER, 30):
                r = await http.post("/channels/register", headers={"Authorization": f"Bearer {KEY}"},
                                    content=json.dumps(body).encode())
                assert r.status_code < 500, (body, r.text[:300])
                if r.status_code >= 400:
                    assert one_line(r.json()["error"])
            # hostile bearer tokens
            for token in examples(HOSTILE_TEXT, 20):
                printable = "".join(ch for ch in token if "!" <= ch <= "~")[:4000]  # what HTTP can carry
                r = await http.post("/channels/inbound", headers={"Authorization": f"Bearer {printable or 'x'}"},
                                    json={"id": "t", "chat": "local:a", "text": "x"})
                assert r.status_code in (401, 403), r.text
            assert (await http.get("/health")).status_code == 200  # still serving

        rows = await store.query(stored)
        # what was stored before is untouched; only accepted bodies were added
        assert [tuple(r) for r in rows[: len(rows_before)]] == [tuple(r) for r in rows_before]
        assert len(rows) <= len(rows_before) + accepted
        channels = await store.query("SELECT name FROM engine_channels ORDER BY name")
        assert "local" in [c["name"] for c in channels]
    finally:
        await server.stop()
        await eng.stop()
        await callback.stop()
        await store.close()
