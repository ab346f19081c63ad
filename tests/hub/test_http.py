"""Streamable HTTP on 127.0.0.1: each agent has its own bearer token; wrong or revoked ones get 401."""

from __future__ import annotations

import httpx
import pytest

from crowdtui.hub.hub import Hub
from crowdtui.hub.tokens import issue_token, list_tokens, revoke_tokens

from .conftest import free_port

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "remote", "version": "1"}}}


def tool_call(msg_id, name, **arguments):
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


@pytest.fixture
async def http_hub(workspace, store, definitions):
    hub = Hub(workspace, store, definitions=definitions.get, http_port=free_port())
    await hub.start()
    yield hub
    await hub.stop()


async def post(hub, body, token=None, headers=None):
    h = dict(HEADERS, **(headers or {}))
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.post(hub.http_url, json=body, headers=h)


async def session(hub, token):
    r = await post(hub, INIT, token)
    assert r.status_code == 200, r.text
    return r


async def test_a_valid_token_acts_as_its_agent(http_hub, store):
    assert http_hub.http_url.startswith("http://127.0.0.1:")
    token = await issue_token(store, "worker")
    await session(http_hub, token)
    r = await post(http_hub, tool_call(2, "send_message", to="lead", body="over http", **{"from": "reviewer"}), token)
    assert "has no parameter 'from'" in r.json()["error"]["message"]  # refused, not ignored (issue 18)
    r = await post(http_hub, tool_call(2, "send_message", to="lead", body="over http"), token)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["isError"] is False
    r = await post(http_hub, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, token)
    names = {t["name"] for t in r.json()["result"]["tools"]}
    assert "observe" in names and "delegate" in names
    [m] = await store.inbox("lead")
    assert (m.sender, m.body) == ("worker", "over http")
    [call] = [e for e in await store.events_after(0, kinds=["hub.call"])]
    assert call.actor == "worker" and call.detail["via"] == "http"


async def test_grants_apply_over_http_too(http_hub, store):
    token = await issue_token(store, "deep")
    await session(http_hub, token)
    r = await post(http_hub, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, token)
    assert "observe" not in {t["name"] for t in r.json()["result"]["tools"]}
    r = await post(http_hub, tool_call(3, "observe", agent="lead"), token)
    assert "not available at tier 2" in r.json()["error"]["message"]


async def test_missing_wrong_and_revoked_tokens_are_refused(http_hub, store):
    r = await post(http_hub, INIT)
    assert r.status_code == 401 and "no bearer token" in r.json()["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await post(http_hub, INIT, "crowd_not-a-real-token")
    assert r.status_code == 401 and "not valid" in r.json()["message"]
    token = await issue_token(store, "worker")
    await session(http_hub, token)
    assert await revoke_tokens(store, "worker") == 1
    r = await post(http_hub, tool_call(2, "send_message", to="lead", body="after revocation"), token)
    assert r.status_code == 401
    assert await store.inbox("lead") == []
    [info] = await list_tokens(store, "worker")
    assert info.revoked_at is not None and token not in repr(info)
    # the database holds only a hash of the token
    rows = await store.query("SELECT * FROM hub_tokens")
    assert all(token not in str(tuple(r)) for r in rows)


async def test_a_foreign_host_header_is_refused(http_hub, store):
    token = await issue_token(store, "worker")
    r = await post(http_hub, INIT, token, headers={"host": "evil.example:80"})
    assert r.status_code in (400, 421)
    r = await post(http_hub, INIT, token)
    assert r.status_code == 200


async def test_tokens_only_for_registered_agents(store):
    from qms.errors import InvalidInput, NotFound

    with pytest.raises(NotFound):
        await issue_token(store, "ghost")
    with pytest.raises(InvalidInput):
        await issue_token(store, "../lead")


async def test_remote_host_names_are_accepted_only_when_listed(workspace, store, definitions):
    import dataclasses

    config = {**workspace.config, "hub": {"http_allowed_hosts": ["hub.example:*"]}}
    ws = dataclasses.replace(workspace, config=config)
    hub = Hub(ws, store, definitions=definitions.get, http_port=free_port())
    await hub.start()
    try:
        token = await issue_token(store, "worker")
        assert (await post(hub, INIT, token, headers={"host": "hub.example:8443"})).status_code == 200
        assert (await post(hub, INIT, token, headers={"host": "evil.example:8443"})).status_code in (400, 421)
    finally:
        await hub.stop()


async def test_oversized_and_malformed_http_requests_are_refused_and_the_hub_keeps_serving(http_hub, store):
    token = await issue_token(store, "worker")
    big = tool_call(2, "send_message", to="lead", body="x" * (2 * 1024 * 1024))
    r = await post(http_hub, big, token)
    assert r.status_code == 413
    async with httpx.AsyncClient(timeout=20) as client:
        r = await client.post(http_hub.http_url, content=b"{not json", headers={**HEADERS, "authorization": f"Bearer {token}"})
    assert r.status_code == 400 and "error" in r.json()
    await session(http_hub, token)
    r = await post(http_hub, tool_call(3, "send_message", to="lead", body="still served"), token)
    assert r.json()["result"]["isError"] is False
    assert [m.body for m in await store.inbox("lead")] == ["still served"]
