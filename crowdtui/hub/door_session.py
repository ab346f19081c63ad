"""One MCP session over a door connection: the SDK's request kernel, without its stream dispatcher.

The MCP SDK serves a connection in two layers. Its *kernel* (``mcp.server.runner``:
``ServerRunner.on_request`` for the handshake era, ``serve_one`` per request for the
2026-07-28 era) does everything the protocol says about a request: initialize and
version negotiation, the init gate, validating spec requests, the middleware chain (the
hub's grants and audit), the tool, and shaping the result for the negotiated version.
Around it, ``Server.run`` puts a *dispatcher*: the lines go through three anyio memory
streams (transport -> era replay -> dispatcher, dispatcher -> transport), each request
through an anyio task group, an OpenTelemetry span and pydantic models of every
message. On a door that dispatcher was about 800 of the 1,100 Python function calls of a
no-op tool call (cProfile), and five scheduler hops of about ten.

``DoorSession`` is that dispatcher for the door, lean: a request read from the socket is
run by the same kernel in one asyncio task, and its answer is one JSON line written by
the door's writer. What it keeps of the SDK's dispatcher, rule by rule:

* the era is decided by the first request, as ``serve_dual_era_loop`` decides it
  (notifications before it are kept, up to 8, and replayed in the chosen era); a
  handshake-era connection refuses enveloped requests, a modern one ``initialize``;
* ``initialize`` runs inline: no later line is read before it is answered;
* ``notifications/cancelled`` cancels the request's task, which is then never answered;
* handler exceptions map to JSON-RPC errors as ``JSONRPCDispatcher`` maps them
  (``MCPError`` -> its error, pydantic ``ValidationError`` -> -32602, else code 0);
* a request still running when the session ends is answered ``Connection closed``
  (-32000), unless its answer was started or the peer cancelled it;
* server-to-client notifications and requests (handshake era only) go out on the
  same writer; the peer's responses resolve them.

Conformance: ``tests/hub/test_door_session.py`` drives a door with the real SDK client in
both eras and checks the raw lines against the SDK's own dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import mcp_types as types
from mcp.server.connection import Connection, NotifyOnlyOutbound
from mcp.server.runner import (
    ServerRunner,
    _has_modern_envelope,
    _initialize_after_modern_data,
    _NoServerRequestsDispatchContext,
    aclose_shielded,
    modern_error_data,
    serve_one,
)
from mcp.shared.dispatcher import coerce_request_id
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data, progress_token_from_params
from mcp.shared.transport_context import TransportContext
from mcp_types.version import LATEST_MODERN_VERSION
from pydantic import ValidationError

log = logging.getLogger(__name__)

_TRANSPORT = TransportContext(kind="jsonrpc", can_send_request=True)
_EARLY_LIMIT = 8  # notifications kept from before the first request (as the SDK keeps them)
SHUTDOWN_WRITE_TIMEOUT = 1.0  # seconds for a "Connection closed" answer at the end

# What the session hands the door to write: ("result" | "error" | "notification" |
# "request", id or None, payload); the door encodes, bounds and sends it.
Emit = Callable[[str, Any, Any], Awaitable[None]]


class _Dctx:
    """The SDK's ``DispatchContext`` for one inbound message of a door."""

    __slots__ = ("session", "request_id", "_progress_token", "_closed", "_cancel")
    transport = _TRANSPORT
    message_metadata = None

    def __init__(self, session: DoorSession, request_id: Any, progress_token: Any = None):
        self.session = session
        self.request_id = request_id
        self._progress_token = progress_token
        self._closed = False
        self._cancel: anyio.Event | None = None  # made when asked for (an anyio.Event costs 10 calls)

    @property
    def cancel_requested(self) -> anyio.Event:
        if self._cancel is None:
            self._cancel = anyio.Event()
        return self._cancel

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    @property
    def can_send_request(self) -> bool:
        return not self._closed

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        if not self._closed:
            await self.session.notify(method, params, opts)

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> dict[str, Any]:
        if self._closed:
            raise NoBackChannelError(method)
        return await self.session.send_raw_request(method, params, opts)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self._progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self._progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)

    def close(self) -> None:
        self._closed = True


class DoorSession:
    """The requests of one connection, run by the SDK's kernel (see the module doc).

    ``receive(message)`` takes each parsed JSON-RPC message in arrival order (it returns
    once ``initialize`` is answered, at once for anything else); ``emit`` writes what goes
    out; ``close()`` ends the requests still running.
    """

    def __init__(self, lowlevel: Any, lifespan_state: Any, emit: Emit, init_options: Any = None):
        self.lowlevel = lowlevel
        self.lifespan_state = lifespan_state
        self.emit = emit
        self.init_options = init_options
        self.era: str | None = None  # "legacy" (initialize handshake) or "modern" (2026-07-28)
        self._early: list[types.JSONRPCNotification] = []
        self._running: dict[Any, tuple[asyncio.Task, _Dctx]] = {}
        self._notes: set[asyncio.Task] = set()  # notification handlers running
        self._pending: dict[Any, asyncio.Future] = {}  # our requests to the peer, by id
        self._next_id = 0
        self._closing = False
        self.closed = False
        self.connection = Connection.for_loop(self)
        self.runner = ServerRunner(lowlevel, self.connection, lifespan_state, init_options=init_options)
        self._modern_outbound = NotifyOnlyOutbound(self)

    # ---- inbound -------------------------------------------------------------------

    async def receive(self, message: Any) -> None:
        if isinstance(message, types.JSONRPCRequest):
            if self.era is None:
                self._choose_era(message)
            dctx = _Dctx(self, message.id, progress_token_from_params(message.params))
            if message.method == "initialize" and self.era == "legacy":
                await self._run(message, dctx)  # inline: nothing else is read until it is answered
                return
            task = asyncio.create_task(self._run(message, dctx))
            # as the SDK: a second request with a running id overwrites the first's entry
            self._running[coerce_request_id(message.id)] = (task, dctx)
        elif isinstance(message, types.JSONRPCNotification):
            if message.method == "notifications/cancelled":
                self._cancel((message.params or {}).get("requestId"))
            if self.era is None:
                if len(self._early) < _EARLY_LIMIT:
                    self._early.append(message)
                return
            self._notify_task(message)
        else:  # a response to one of our requests
            fut = self._pending.pop(coerce_request_id(message.id), None) if message.id is not None else None
            if fut is not None and not fut.done():
                fut.set_result(message)

    def _choose_era(self, first: types.JSONRPCRequest) -> None:
        modern = first.method != "initialize" and _has_modern_envelope(first.params)
        self.era = "modern" if modern else "legacy"
        early, self._early = self._early, []
        for note in early:
            self._notify_task(note)

    def _cancel(self, request_id: Any) -> None:
        if isinstance(request_id, bool) or not isinstance(request_id, (str, int)):
            return
        # forgotten here: a task cancelled before its first step never reaches its own cleanup
        entry = self._running.pop(coerce_request_id(request_id), None)
        if entry is not None:
            task, dctx = entry
            dctx.cancel_requested.set()
            task.cancel()

    def _notify_task(self, message: types.JSONRPCNotification) -> None:
        dctx = _Dctx(self, None)
        task = asyncio.create_task(self._on_notify(dctx, message.method, message.params))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def _on_notify(self, dctx: _Dctx, method: str, params: Mapping[str, Any] | None) -> None:
        try:
            if self.era == "modern":
                connection = Connection.from_envelope(LATEST_MODERN_VERSION, None, None, outbound=self._modern_outbound)
                runner = ServerRunner(self.lowlevel, connection, self.lifespan_state)
                try:
                    await runner.on_notify(_NoServerRequestsDispatchContext(dctx), method, params)
                finally:
                    await aclose_shielded(connection)
            else:
                await self.runner.on_notify(dctx, method, params)
        except Exception:
            log.exception("notification handler for %r raised", method)

    # ---- requests --------------------------------------------------------------------

    async def _handle(self, dctx: _Dctx, method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        if self.era == "legacy":
            if method != "initialize" and _has_modern_envelope(params):
                raise MCPError(
                    code=types.INVALID_REQUEST,
                    message="this connection serves the handshake protocol era; "
                    "requests carrying the 2026-07-28 envelope are not accepted on it",
                )
            return await self.runner.on_request(dctx, method, params)
        if method == "initialize":
            raise MCPError(
                code=types.UNSUPPORTED_PROTOCOL_VERSION,
                message="connection is serving the 2026-07-28 protocol; the initialize handshake is not accepted",
                data=_initialize_after_modern_data(params),
            )
        route = classify_inbound_request({"method": method, "params": params})
        if isinstance(route, InboundLadderRejection):
            raise MCPError(code=route.code, message=route.message, data=route.data)
        connection = Connection.from_envelope(
            route.protocol_version, route.client_info, route.client_capabilities, outbound=self._modern_outbound)
        try:
            return await serve_one(self.lowlevel, _NoServerRequestsDispatchContext(dctx), method, params,
                                   connection=connection, lifespan_state=self.lifespan_state)
        except (MCPError, ValidationError):
            raise
        except Exception as exc:
            error = modern_error_data(exc)
            raise MCPError(code=error.code, message=error.message, data=error.data) from exc

    async def _run(self, req: types.JSONRPCRequest, dctx: _Dctx) -> None:
        started = False
        try:
            try:
                result = await self._handle(dctx, req.method, req.params)
            finally:
                dctx.close()
                key = coerce_request_id(req.id)
                entry = self._running.get(key)
                if entry is not None and entry[1] is dctx:
                    del self._running[key]
            if dctx.cancelled:
                return
            started = True
            await self.emit("result", req.id, result)
        except asyncio.CancelledError:
            if dctx.cancelled:
                return  # the peer cancelled it: never answered
            if not started and self._closing:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(
                        self.emit("error", req.id, types.ErrorData(code=types.CONNECTION_CLOSED, message="Connection closed")),
                        SHUTDOWN_WRITE_TIMEOUT)
                return
            raise
        except Exception as exc:
            if started:  # the answer could not be written: the door has ended the connection
                log.debug("answer to %r not written: %r", req.id, exc)
                return
            error = handler_exception_to_error_data(exc)
            if error is None:
                log.exception("handler for %r raised", req.method)
                error = types.ErrorData(code=0, message=str(exc))  # the SDK dispatcher's code for these
            if not dctx.cancelled:
                await self.emit("error", req.id, error)

    # ---- outbound (the SDK's Outbound protocol) -------------------------------------

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = dict(params)
        try:
            await self.emit("notification", None, message)
        except (ConnectionError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            log.debug("dropped %s: connection closed", method)

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> dict[str, Any]:
        if self._closing:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        self._next_id += 1
        request_id = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params:
            message["params"] = dict(params)
        timeout = (opts or {}).get("timeout")
        try:
            await self.emit("request", request_id, message)
            reply = await asyncio.wait_for(fut, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            await self.notify("notifications/cancelled", {"requestId": request_id, "reason": f"timed out after {timeout}s"})
            raise MCPError(code=types.REQUEST_TIMEOUT, message=f"Request {method!r} timed out") from None
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, types.JSONRPCError):
            raise MCPError(code=reply.error.code, message=reply.error.message, data=reply.error.data)
        if reply is None:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        return reply.result

    # ---- end -------------------------------------------------------------------------

    async def close(self) -> None:
        """The connection ends: requests still running are cancelled (each answered
        ``Connection closed`` if it can be), our requests to the peer fail."""
        if self.closed:
            return
        self.closed = self._closing = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_result(None)
        self._pending.clear()
        tasks = [task for task, _ in self._running.values()] + list(self._notes)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await aclose_shielded(self.connection)
