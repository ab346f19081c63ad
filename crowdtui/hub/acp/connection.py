"""JSON-RPC 2.0 over newline-delimited lines: the Agent Client Protocol's wire, client side.

Transport-free: :class:`Connection` is given ``send(bytes)`` and is fed what the agent
printed (``feed``); it matches answers to its requests, hands the agent's requests and
notifications to the handlers, and answers the requests with what the handler returns (or
the :class:`RpcError` it raises). The agent is hostile input:

- a line longer than ``MAX_LINE`` is dropped whole (and counted in ``refused``), never
  buffered past the bound;
- a line that is not a JSON object, an answer to no request of ours, or an answer to a
  request already answered (a replayed id) is dropped and counted;
- each handler runs in a task of its own (an agent may ask several things at once), and
  at most ``MAX_INFLIGHT`` of the agent's requests run at a time; beyond that the agent is
  told to retry later (-32000).

``tap(direction, line)`` sees every line in (``"in"``) and out (``"out"``): the recorder of
the replay harness hangs here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from crowdtui.errors import CrowdError

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024 * 1024  # a file's whole text may travel in one line
MAX_INFLIGHT = 64
METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR, SERVER_ERROR = -32601, -32602, -32603, -32000

RequestHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
NotificationHandler = Callable[[str, dict[str, Any]], None]
Tap = Callable[[str, bytes], None]


class RpcError(CrowdError):
    """An error answer (ours to the agent, or the agent's to us)."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def wire(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ConnectionClosed(CrowdError):
    """The agent's end went away while a request waited."""


class Connection:
    def __init__(self, send: Callable[[bytes], None], *, on_request: RequestHandler | None = None,
                 on_notification: NotificationHandler | None = None, tap: Tap | None = None):
        self._send = send
        self.on_request = on_request
        self.on_notification = on_notification
        self.tap = tap
        self._ids = itertools.count(0)
        self._pending: dict[int, asyncio.Future] = {}
        self._buffer = bytearray()
        self._skipping = False  # inside a line that passed MAX_LINE: drop to its end
        self._tasks: set[asyncio.Task] = set()
        self.refused = 0  # lines dropped (too long, not JSON-RPC, unknown or replayed ids)
        self.closed = False

    # ---- out

    def _write(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if self.tap is not None:
            self.tap("out", line)
        self._send(line)

    async def request(self, method: str, params: dict[str, Any] | None = None, *,
                      timeout: float | None = None) -> Any:
        """Send a request; return its result, raise :class:`RpcError` for an error answer."""
        if self.closed:
            raise ConnectionClosed(f"the agent's connection is closed; cannot send {method}")
        rid = next(self._ids)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self._write({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(rid, None)

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        if not self.closed:
            self._write({"jsonrpc": "2.0", "method": method, "params": params or {}})

    # ---- in

    def feed(self, data: bytes) -> None:
        """What the agent printed on stdout, in any pieces."""
        while data:
            cut = data.find(b"\n")
            piece, data = (data, b"") if cut < 0 else (data[:cut], data[cut + 1:])
            if self._skipping:
                if cut >= 0:
                    self._skipping = False
                continue
            if len(self._buffer) + len(piece) > MAX_LINE:
                self._buffer.clear()
                self.refused += 1
                self._skipping = cut < 0
                log.warning("acp: dropped a line over %d bytes", MAX_LINE)
                continue
            self._buffer += piece
            if cut >= 0:
                line, self._buffer = bytes(self._buffer), bytearray()
                if line.strip():
                    self._line(line)

    def _line(self, line: bytes) -> None:
        if self.tap is not None:
            self.tap("in", line + b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            self.refused += 1
            return
        if not isinstance(message, dict):
            self.refused += 1
            return
        method = message.get("method")
        if isinstance(method, str):
            params = message.get("params")
            params = params if isinstance(params, dict) else {}
            if "id" in message:
                self._start_request(message["id"], method, params)
            elif self.on_notification is not None:
                try:
                    self.on_notification(method, params)
                except Exception:
                    log.exception("acp: the notification handler failed on %s", method)
            return
        rid = message.get("id")
        future = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if future is None or future.done():
            self.refused += 1  # an answer to nothing we asked, or asked and answered already
            return
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(RpcError(int(error.get("code") or INTERNAL_ERROR) if isinstance(
                error.get("code"), int) else INTERNAL_ERROR, str(error.get("message") or "error")[:2000],
                error.get("data")))
        else:
            future.set_result(message.get("result"))

    def _start_request(self, rid: Any, method: str, params: dict[str, Any]) -> None:
        if not isinstance(rid, (int, str)) or isinstance(rid, bool):
            self.refused += 1
            return
        if len(self._tasks) >= MAX_INFLIGHT:
            self._answer(rid, error=RpcError(SERVER_ERROR, f"too many requests at once ({MAX_INFLIGHT}); retry"))
            return
        task = asyncio.get_running_loop().create_task(self._serve(rid, method, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, rid: Any, method: str, params: dict[str, Any]) -> None:
        if self.on_request is None:
            self._answer(rid, error=RpcError(METHOD_NOT_FOUND, f"{method} is not served"))
            return
        try:
            result = await self.on_request(method, params)
        except RpcError as exc:
            self._answer(rid, error=exc)
        except asyncio.CancelledError:
            self._answer(rid, error=RpcError(SERVER_ERROR, f"{method} was cancelled"))
            raise
        except Exception as exc:
            log.exception("acp: serving %s failed", method)
            self._answer(rid, error=RpcError(INTERNAL_ERROR, f"{method} failed: {type(exc).__name__}"))
        else:
            self._answer(rid, result=result)

    def _answer(self, rid: Any, *, result: Any = None, error: RpcError | None = None) -> None:
        if self.closed:
            return
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            message["error"] = error.wire()
        else:
            message["result"] = result
        self._write(message)

    def close(self) -> None:
        """The agent's end is gone: every waiting request fails, every served request stops."""
        if self.closed:
            return
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed("the agent's connection closed before it answered"))
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()
