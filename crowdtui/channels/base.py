"""What every network channel shares: the channel protocol's client side.

A :class:`NetworkChannel` registers with dispatch (owning chats ``NAME:*``), serves its
callback on 127.0.0.1 (``/send``, ``/typing``, ``/health``, guarded by its callback
token), and runs the network's loop: :meth:`connect`, then :meth:`pump` round after
round, reconnecting with exponential backoff when the network or dispatch fails.

Inbound: :meth:`deliver` turns a network message into the protocol's body (control
characters made inert, labels bounded, oversized text refused) and posts it with the
same id until dispatch answers 200 (stored now or a duplicate). A subclass saves its
network cursor (:class:`~crowdtui.channels.state.ChannelState`) only after that, so a
channel killed at any moment loses nothing, and what it re-reads dispatch drops by id.

Outbound: dispatch posts ``/send`` and retries until it gets a 2xx; the outbound ids
(and, for texts split in parts, the parts) already delivered are remembered in the same
state file, so a retry after a lost answer is not sent to the network twice.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Callable

from crowdtui.channels.state import ChannelState
from crowdtui.dispatch.channel_peer import ChannelPeer, DispatchDown, response_error
from crowdtui.dispatch.inbound import MAX_ID, MAX_NAME, MAX_TEXT, InboundMsg
from crowdtui.errors import CrowdError
from crowdtui.text_safety import inert

MAX_BACKOFF = 30.0


class Refused(Exception):
    """A network message that is not passed on (the reason says why, for the log and the sender)."""


# A message as the network gave it, before :func:`protocol_body` makes it safe: the
# protocol's own shape, with ``chat`` the network's chat id (without the channel's prefix).
NetMessage = InboundMsg


def _one_line(value: object) -> str:
    """One line, every control character visible; a tab too (dispatch takes none in a label)."""
    return inert(str(value), multiline=False).replace("\t", "\\x09")


def _label(value: str | None, limit: int = MAX_NAME) -> str | None:
    if value is None:
        return None
    return _one_line(value)[:limit] or None


def protocol_body(prefix: str, msg: NetMessage) -> dict:
    """The inbound body for dispatch; raises :class:`Refused` for what must not pass."""
    text = inert(msg.text.replace("\r\n", "\n"))
    size = len(text.encode())
    if size > MAX_TEXT:
        raise Refused(f"message is {size} bytes; the limit is {MAX_TEXT} bytes, split it")
    if not text.strip() and not msg.attachments:
        raise Refused("message has no text and no attachments")
    mid = _one_line(msg.id)
    if not mid or len(mid) > MAX_ID:
        raise Refused(f"message id is empty or over {MAX_ID} characters")
    chat = prefix + _one_line(msg.chat)
    if len(chat) > 200:
        raise Refused("chat id is over 200 characters")
    body = {"id": mid, "chat": chat, "text": text, "sender": _label(msg.sender),
            "sender_name": _label(msg.sender_name), "room": _label(msg.room), "time": _label(msg.time, 64),
            "reply_to": _label(msg.reply_to, MAX_ID)}
    if msg.attachments:
        body["attachments"] = [{k: (_label(v, 2000) if isinstance(v, str) else v) for k, v in a.items()}
                               for a in msg.attachments[:20]]
    return {k: v for k, v in body.items() if v is not None}


def stderr_status(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} channel: {line}", file=sys.stderr, flush=True)


__all__ = ["DispatchDown", "NetMessage", "NetworkChannel", "Refused", "protocol_body"]


class NetworkChannel(ChannelPeer):
    """Subclasses set ``platform`` and implement connect / pump / disconnect / send_part / typing."""

    platform = "net"
    #: (module, PyPI distribution) the network's client needs; checked at :meth:`start`.
    libraries: tuple[tuple[str, str], ...] = ()

    def __init__(self, *, name: str, dispatch_url: str, register_key: str, state_path,
                 status: Callable[[str], None] | None = None, max_backoff: float = MAX_BACKOFF,
                 locate: Callable[[], dict | None] | None = None) -> None:
        self.name = name
        self.prefix = f"{name}:"
        self.dispatch_url = dispatch_url.rstrip("/")
        self.register_key = register_key
        self.state = ChannelState(state_path)
        self.status = status or stderr_status
        self.max_backoff = max_backoff
        self.locate = locate  # where dispatch is now (serve.json), for following a restarted serve
        self._peer_init()
        self.stopping = asyncio.Event()
        self.delivered = 0  # inbound messages dispatch acknowledged
        self.connected = False  # logged in to the network right now
        self._send_lock = asyncio.Lock()

    # --- what a network implements ----------------------------------------------------

    async def connect(self) -> None:
        """Log in to the network (raise to retry later)."""

    async def pump(self) -> None:
        """One round: fetch what is new, :meth:`deliver` it, then save the cursor."""
        raise NotImplementedError

    async def disconnect(self) -> None:
        """Drop the network connection (after an error, or at the end)."""

    def split(self, text: str) -> list[str]:
        return [text]

    async def send_part(self, chat: str, text: str, body: dict, index: int) -> None:
        """Put one part of an outbound text on the network; raise if it did not go."""
        raise NotImplementedError

    async def typing(self, chat: str) -> None:
        """Show 'typing' in ``chat`` (best effort)."""

    async def refused(self, msg: NetMessage, reason: str) -> None:
        """Tell the network's sender that ``msg`` was not passed on (default: log only)."""

    # --- the protocol ---------------------------------------------------------------------

    def _app(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def body_of(request: Request) -> dict | None:
            try:
                body = await request.json()
            except ValueError:
                return None
            chat = body.get("chat") if isinstance(body, dict) else None
            if not isinstance(chat, str) or not chat.startswith(self.prefix) or len(chat) > 200:
                return None
            return body

        async def send(request: Request):
            if not self.callback_ok(request):
                return JSONResponse({"error": "wrong callback token"}, status_code=401)
            body = await body_of(request)
            if body is None or not isinstance(body.get("text"), str):
                return JSONResponse({"error": f"send {{id, chat: '{self.prefix}…', text}}"}, status_code=422)
            try:
                sent = await self.send(body)
            except Exception as exc:  # dispatch retries; the parts already sent are remembered
                self.status(f"outbound {body.get('id')} to {inert(body['chat'])} failed: {type(exc).__name__}: "
                            f"{inert(str(exc))[:200]}")
                return JSONResponse({"error": f"network refused: {type(exc).__name__}"}, status_code=502)
            return JSONResponse({"ok": True, "duplicate": not sent})

        async def typing(request: Request):
            if not self.callback_ok(request):
                return JSONResponse({"error": "wrong callback token"}, status_code=401)
            body = await body_of(request)
            if body is None:
                return JSONResponse({"error": "send {chat}"}, status_code=422)
            try:
                await self.typing(body["chat"][len(self.prefix):])
            except Exception as exc:  # typing is a courtesy: never retried
                self.status(f"typing in {inert(body['chat'])} failed: {type(exc).__name__}")
            return JSONResponse({"ok": True})

        async def health(request: Request):
            # 200 even while the network is away: dispatch keeps the channel (and retries its
            # replies) instead of deregistering it; "connected" says how the network is
            return JSONResponse({"ok": True, "channel": self.name, "platform": self.platform,
                                 "connected": self.connected, "delivered": self.delivered})

        return Starlette(routes=[Route("/send", send, methods=["POST"]), Route("/typing", typing, methods=["POST"]),
                                 Route("/health", health, methods=["GET"])])

    async def send(self, body: dict) -> bool:
        """Deliver one outbound item once; False when it had been delivered before."""
        oid = str(body.get("id"))
        chat = body["chat"][len(self.prefix):]
        async with self._send_lock:
            done = self.state.parts_done(oid)
            if done < 0:
                return False
            parts = self.split(body["text"])
            for i in range(done, len(parts)):
                await self.send_part(chat, parts[i], body, i)
                self.state.note_parts(oid, i + 1)
            self.state.note_parts(oid, -1)
            return True

    def prefixes(self) -> list[str]:
        return [self.prefix]

    def registered(self) -> None:
        self.status(f"channel {self.name} ({self.platform}) registered with {self.dispatch_url}")

    async def deliver(self, msg: NetMessage) -> bool:
        """Hand ``msg`` to dispatch. True once stored (now or before); False when refused
        (logged, the sender told where the network allows). Raises :class:`DispatchDown`
        when dispatch cannot take it now: the caller must not move its cursor past it."""
        try:
            body = protocol_body(self.prefix, msg)
        except Refused as exc:
            await self._refuse(msg, str(exc))
            return False
        for attempt in range(8):
            r = await self._post("/channels/inbound", body, self.token or "", tries=8)
            if r.status_code == 200:
                self.delivered += 1
                return True
            if r.status_code == 401:  # deregistered (missed health checks, dispatch restarted)
                await self.register()
                continue
            if r.status_code == 429 or r.status_code >= 500:
                await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
                continue
            await self._refuse(msg, response_error(r))
            return False
        raise DispatchDown(f"dispatch did not store message {msg.id!r} after retries (last HTTP {r.status_code})")

    async def relocate(self) -> bool:
        """Follow a restarted dispatch (new URL or register key, as ``locate`` reads them
        from serve.json) and register there; False when nothing changed."""
        info = (self.locate() if self.locate else None) or {}
        url, key = info.get("url"), info.get("register_key")
        if not url or not key or (url.rstrip("/"), key) == (self.dispatch_url, self.register_key):
            return False
        self.dispatch_url, self.register_key = url.rstrip("/"), key
        self.status(f"dispatch is now at {self.dispatch_url}; registering again")
        await self.register()
        return True

    async def _refuse(self, msg: NetMessage, reason: str) -> None:
        self.status(f"refused message {_one_line(msg.id)[:80]} in {_one_line(msg.chat)[:80]}: {reason}")
        try:  # recorded by dispatch as a channel.refused event (best effort: never retried)
            await self._http.post(self.dispatch_url + "/channels/refused",
                                  json={"reason": reason[:300], "id": _one_line(msg.id)[:300],
                                        "chat": (self.prefix + _one_line(msg.chat))[:300]},
                                  headers={"Authorization": f"Bearer {self.token}"})
        except Exception as exc:
            self.status(f"could not record the refusal with dispatch: {type(exc).__name__}")
        try:
            await self.refused(msg, reason)
        except Exception as exc:
            self.status(f"could not tell the sender: {type(exc).__name__}")

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        missing_library(self.platform, self.libraries)
        await super().start()

    async def run(self) -> None:
        """Serve until :attr:`stopping` is set: connect, pump, and on any failure back off
        (0.5 s doubling to ``max_backoff``) and connect again."""
        delay = 0.5
        while not self.stopping.is_set():
            try:
                await self.connect()
                self.connected = True
                while not self.stopping.is_set():
                    await self.pump()
                    delay = 0.5
            except asyncio.CancelledError:
                raise
            except ImportError as exc:  # an install fault: retrying cannot mend it
                raise CrowdError(f"{self.platform} channel: {exc}; reinstall crowdtui "
                                 f"(its client library is a dependency)") from exc
            except Exception as exc:
                self.connected = False
                self.status(f"{self.platform}: {type(exc).__name__}: {inert(str(exc))[:300]}; "
                            f"reconnecting in {delay:.1f} s")
                if isinstance(exc, CrowdError):  # dispatch gone or refusing us: has it moved?
                    try:
                        await self.relocate()
                    except Exception as again:
                        self.status(f"dispatch: {type(again).__name__}: {inert(str(again))[:200]}")
                try:
                    await self.disconnect()
                except Exception:
                    pass
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(self.max_backoff, delay * 2)
        await self.disconnect()

    async def close(self) -> None:
        self.stopping.set()
        await super().close()


def missing_library(platform: str, libraries) -> None:
    """Refuse to start a channel whose client library is not installed (said once, at
    start, rather than retried for ever)."""
    import importlib.util

    for module, dist in libraries:
        if importlib.util.find_spec(module) is None:
            raise CrowdError(f"the {platform} channel needs the Python package {dist!r} "
                             f"(module {module!r}), which is not installed; reinstall crowdtui")
