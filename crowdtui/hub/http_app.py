"""Streamable HTTP in front of the hub's MCP server: every request needs a valid bearer token.

The token names the agent (``crowdtui token issue NAME``); the guard puts that name in
the ASGI scope (``crowd.agent``), where the hub's middleware reads it for each MCP
request. A missing, wrong or revoked token gets ``401`` before MCP sees anything.
"""

from __future__ import annotations

import json
from typing import Any

from crowdtui.hub.tokens import agent_for_token


def _bearer(scope) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


async def _refuse(send, message: str) -> None:
    body = json.dumps({"error": "unauthorized", "message": message}).encode()
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Bearer realm="crowd-hub"'),
            (b"content-length", str(len(body)).encode()),
        ],
    })
    await send({"type": "http.response.body", "body": body})


def token_guard(app, store: Any):
    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await _refuse(send, "no bearer token; send `Authorization: Bearer <token>` (crowdtui token issue NAME makes one)")
            return
        agent = await agent_for_token(store, token)
        if agent is None:
            await _refuse(send, "this token is not valid (wrong or revoked); ask the operator for a new one")
            return
        scope["crowd.agent"] = agent
        await app(scope, receive, send)

    return guarded
