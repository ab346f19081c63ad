"""Dispatch's HTTP side (starlette), served on 127.0.0.1 by ``crowdtui serve``.

    GET  /health                 dispatch status (no auth)
    POST /channels/register      Bearer <register key from .crowd/run/serve.json>
                                 {name, platform?, callback_url, prefixes, callback_token?} -> {token}
    POST /channels/inbound       Bearer <channel token>; one message -> 200 once stored
    POST /channels/deregister    Bearer <channel token>
    POST /channels/refused       Bearer <channel token>; {reason, id?, chat?}: what the channel
                                 refused from its network, recorded as a channel.refused event
                                 (one per channel and kind of reason each 10 s, with a count)

Every refusal is a 4xx with ``{"error": "<one line: what was wrong and what to do>"}``
and nothing stored.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from qms import channels as chans
from qms.errors import QmsError, StoreUnavailable
from qms.names import DISPATCH, NAME_RE
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crowdtui.dispatch.inbound import parse_inbound
from crowdtui.dispatch.service import Dispatch
from crowdtui.hub.bounds import RefusalReporter
from crowdtui.text_safety import inert

MAX_BODY = 128 * 1024
TOKEN_CACHE_SECONDS = 2.0  # a token is looked up again after this (or when channels change)
MAX_PREFIXES = 20
REFUSAL_EVENT_EVERY = 10.0  # seconds: at most one channel.refused event per channel and kind of reason
_PREFIX_OK = re.compile(r"[^\x00-\x1f\x7f\s]{1,100}")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token; send 'Authorization: Bearer <token>'")
    return token.strip()


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY:
                raise ApiError(413, f"body is {declared} bytes; the limit is {MAX_BODY} bytes")
        except ValueError:
            raise ApiError(400, "bad Content-Length header") from None
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise ApiError(413, f"body is over {MAX_BODY} bytes; split the message")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON ({exc.__class__.__name__}: {exc}); send a JSON object") from None


def _check_register(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ApiError(422, "body must be a JSON object with name, callback_url and prefixes")
    allowed = {"name", "platform", "callback_url", "prefixes", "callback_token"}
    extra = set(body) - allowed
    if extra:
        raise ApiError(422, f"unknown field {sorted(extra)[0]!r}; allowed: {', '.join(sorted(allowed))}")
    name = body.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ApiError(422, "field 'name' must be a channel name: a-z, 0-9, '_' or '-', up to 63 characters")
    platform = body.get("platform", name)
    if not isinstance(platform, str) or not NAME_RE.fullmatch(platform):
        raise ApiError(422, "field 'platform' must be a short lower-case word like telegram or local")
    url = body.get("callback_url")
    if not isinstance(url, str) or len(url) > 500:
        raise ApiError(422, "field 'callback_url' must be an http URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(422, f"callback_url {url[:80]!r} is not an http(s) URL; send e.g. http://127.0.0.1:9000")
    prefixes = body.get("prefixes")
    if (not isinstance(prefixes, list) or not prefixes or len(prefixes) > MAX_PREFIXES
            or not all(isinstance(p, str) and _PREFIX_OK.fullmatch(p) for p in prefixes)):
        raise ApiError(422, f"field 'prefixes' must be a list of 1-{MAX_PREFIXES} chat-id prefixes "
                            "(strings without spaces, e.g. [\"local:\"])")
    cb_token = body.get("callback_token", "")
    if not isinstance(cb_token, str) or len(cb_token) > 200:
        raise ApiError(422, "field 'callback_token' must be a string of at most 200 characters")
    return {"name": name, "platform": platform, "callback_url": url, "prefixes": prefixes,
            "callback_token": cb_token}


def build_app(dispatch: Dispatch, *, register_key: str, status: Callable[[], dict] | None = None) -> Starlette:
    """The HTTP app. ``register_key`` guards registration; ``status()`` adds to /health."""

    async def health(request: Request) -> JSONResponse:
        live = await chans.list_channels(dispatch.store)
        body = {"ok": True, "pid": os.getpid(), "channels": [c.name for c in live],
                "routed": dict(dispatch.router.counts), "sent": dispatch.sent}
        if status:
            body.update(status())
        return JSONResponse(body)

    async def register(request: Request) -> JSONResponse:
        token = _bearer(request)
        if not hmac.compare_digest(token.encode(), register_key.encode()):
            raise ApiError(403, "wrong register key; read it from .crowd/run/serve.json of this workspace")
        fields = _check_register(await _json_body(request))
        try:
            ch, chan_token = await dispatch.register(**fields)
        except StoreUnavailable:
            raise
        except QmsError as exc:
            raise ApiError(409, str(exc)) from None
        return JSONResponse({"name": ch.name, "token": chan_token, "prefixes": list(ch.prefixes)})

    known: dict[str, tuple] = {}  # token -> (channel, checked at, dispatch.channel_epoch)

    async def _channel(request: Request) -> chans.Channel:
        token = _bearer(request)
        hit = known.get(token)
        now = time.monotonic()
        if hit is not None and now - hit[1] < TOKEN_CACHE_SECONDS and dispatch.channel_epoch == hit[2]:
            return hit[0]
        ch = await chans.channel_for_token(dispatch.store, token)
        if ch is None:
            known.pop(token, None)
            raise ApiError(401, "unknown or expired channel token; register again")
        if len(known) > 1000:
            known.clear()
        known[token] = (ch, now, dispatch.channel_epoch)
        return ch

    async def inbound(request: Request) -> JSONResponse:
        ch = await _channel(request)
        payload = await _json_body(request)
        try:
            msg = parse_inbound(payload)
        except QmsError as exc:
            raise ApiError(422, str(exc)) from None
        if not ch.owns(msg.chat):
            raise ApiError(403, f"chat {msg.chat[:80]!r} is not under this channel's prefixes "
                                f"({', '.join(ch.prefixes)}); register the prefix first")
        seq, created = await dispatch.receive(ch, msg)
        return JSONResponse({"ok": True, "seq": seq, "duplicate": not created})

    async def record_refusal(kind: str, channel: str, detail: dict) -> None:
        await dispatch.store.append_event(DISPATCH, kind, channel, detail)

    reporter = RefusalReporter(record_refusal, REFUSAL_EVENT_EVERY, kind="channel.refused")

    async def refused(request: Request) -> JSONResponse:
        ch = await _channel(request)
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"reason", "id", "chat"}:
            raise ApiError(422, "send {reason, id?, chat?}")
        fields = {k: body.get(k) for k in ("reason", "id", "chat")}
        if not isinstance(fields["reason"], str) or not fields["reason"].strip() or not all(
                v is None or (isinstance(v, str) and len(v) <= 300) for v in fields.values()):
            raise ApiError(422, "field 'reason' must be a string (and id, chat strings) of at most 300 characters")
        kind = re.sub(r"\d+", "N", inert(fields["reason"], multiline=False))[:80]  # flood key: sizes vary
        reporter.refused(ch.name, "network", kind, {k: inert(v, multiline=False) for k, v in fields.items() if v})
        return JSONResponse({"ok": True})

    async def deregister(request: Request) -> JSONResponse:
        ch = await _channel(request)
        await chans.deregister_channel(dispatch.store, ch.name, reason="asked by the channel")
        dispatch.channel_epoch += 1
        return JSONResponse({"ok": True})

    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _err(exc.status, str(exc))

    async def on_store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        response = _err(503, str(exc))  # nothing was stored: the channel keeps the message and retries
        response.headers["Retry-After"] = "5"
        return response

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/channels/register", register, methods=["POST"]),
            Route("/channels/inbound", inbound, methods=["POST"]),
            Route("/channels/deregister", deregister, methods=["POST"]),
            Route("/channels/refused", refused, methods=["POST"]),
        ],
        exception_handlers={ApiError: on_api_error, StoreUnavailable: on_store_unavailable},
    )
