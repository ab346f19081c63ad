"""MCP over a unix socket: newline-delimited JSON-RPC (like stdio), one session per connection.

Server side: ``serve_connection`` runs one MCP server session over an accepted
connection, with ``DOOR_AGENT`` bound to the agent whose socket it arrived on. Lines
that are not JSON, not JSON-RPC, or longer than ``MAX_LINE`` get a JSON-RPC error
(the connection keeps working). It is bounded by ``crowdtui.hub.limits``: calls running
at once, answer size, idle and slow-reader timeouts, every write drained. Client side: ``unix_client`` is an MCP client
transport (for ``mcp.Client``) over such a socket.

Socket paths can exceed the kernel's 108-byte limit in deep folders; ``connect_unix`` then
goes through ``/proc/self/fd/<dirfd>/<name>``. Doors are bound by
:meth:`crowdtui.agent_folder.AgentFolder.bind_socket` (never by path in the agent's folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pydantic_core
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage

from crowdtui.hub.door_session import DoorSession
from crowdtui.hub.identity import DOOR_AGENT
from crowdtui.hub.limits import ANSWER_TOO_LARGE, DEFAULT, IDLE_CLOSED, Limits

MAX_LINE = DEFAULT.max_request  # one JSON-RPC request line (see crowdtui.hub.limits)
CLIENT_WRITE_TIMEOUT = 300.0  # unix_client: seconds the hub may take to read a request
_SUN_PATH_MAX = 100


def _short_path(path: Path) -> tuple[str, int | None]:
    path = Path(path)
    if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
        return str(path), None
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{dirfd}/{path.name}", dirfd


def connect_unix(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    addr, dirfd = _short_path(Path(path))
    try:
        sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    finally:
        if dirfd is not None:
            os.close(dirfd)
    return sock


# Requests that open a stream for the session's life instead of making a call (MCP 2.x:
# a client's notification stream). They take no call place; a few per connection at most.
STREAMS = frozenset({"subscriptions/listen"})


def _error_line(code: int, message: str, msg_id: Any = None) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}) + "\n").encode()


async def read_lines(reader: asyncio.StreamReader, max_line: int = MAX_LINE, chunk_size: int = 65536):
    """Yield complete lines (bytes, without the newline); an oversized line yields ``None``.

    At most ``max_line`` bytes of an unfinished line are kept; the rest of an oversized
    line is read and dropped up to its newline.
    """
    buf = bytearray()
    discarding = False
    while True:
        chunk = await reader.read(chunk_size)
        if not chunk:
            if buf and not discarding:
                yield bytes(buf)
            return
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                if not discarding:
                    buf += chunk[start:]
                    if len(buf) > max_line:
                        buf = bytearray()  # drop the memory, not just the contents
                        discarding = True
                        yield None
                break
            if discarding:
                discarding = False
            else:
                buf += chunk[start:nl]
                if len(buf) > max_line:
                    yield None
                else:
                    yield bytes(buf)
            buf = bytearray() if len(buf) > chunk_size else buf
            buf.clear()
            start = nl + 1


class SlowReader(ConnectionError):
    """The peer did not read an answer within the slow-reader timeout; the connection is cut."""


class LineWriter:
    """The one writer of a connection: whole lines, each drained within ``timeout`` seconds.

    Every line (answers, error replies, refusals) goes through ``send``, which waits until
    the peer has taken it (the transport's buffer is under its low-water mark); a peer that
    does not read in time is cut off (``SlowReader``) and its buffered bytes dropped.
    """

    def __init__(self, writer: asyncio.StreamWriter, timeout: float):
        self.writer = writer
        self.timeout = timeout
        self._lock = asyncio.Lock()

    async def send(self, *parts: bytes) -> None:
        await self.send_made(lambda: parts[0] if len(parts) == 1 else b"".join(parts))

    async def send_made(self, make: Callable[[], bytes]) -> None:
        """Send the line ``make()`` returns, made only once it is this line's turn: answers
        waiting behind a peer that does not read are never serialised."""
        async with self._lock:
            if self.writer.is_closing():
                raise ConnectionResetError("the connection is closed")
            # one write, so one send(): a line written in parts wakes the peer for a piece
            # it cannot use yet (each wake-up costs both sides a trip through the scheduler)
            self.writer.write(make())
            if not self.writer.transport.get_write_buffer_size():
                return  # the socket took it all: nothing to wait for (wait_for costs a task)
            try:
                await asyncio.wait_for(self.writer.drain(), self.timeout)
            except (asyncio.TimeoutError, TimeoutError):
                self.writer.transport.abort()
                raise SlowReader(f"the peer did not read an answer within {self.timeout:.0f} s") from None


def _text_size(value: Any, budget: int) -> int:
    """A lower bound of ``value``'s JSON size (its strings' lengths), stopping past ``budget``."""
    total = 0
    stack = [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            total += len(item)
            stack.extend(item)
        else:
            total += 4
    return total


class AnswerTooLarge(Exception):
    """An answer over the per-answer byte cap; ``line`` is the error to send instead."""

    def __init__(self, msg_id: Any, size: int | str, limit: int):
        super().__init__(f"answer of {size} bytes over {limit}")
        self.size, self.limit = size, limit
        self.line = _error_line(
            ANSWER_TOO_LARGE,
            f"the answer to this call was {size} bytes, over the hub's limit of {limit} bytes per answer, "
            f"and was not sent (nothing was marked read); ask for less: a smaller limit for get_messages "
            f"or observe, one document at a time", msg_id)


def encode_message(message: Any, max_answer: int | None = None) -> bytes:
    """One outgoing JSON-RPC message as bytes (no newline). An answer bigger than
    ``max_answer`` raises ``AnswerTooLarge`` -- before it is serialised when its strings
    alone are already too many bytes, so no copy of it is made."""
    if max_answer is not None and isinstance(message, types.JSONRPCResponse):
        estimate = _text_size(message.result, max_answer)
        if estimate > max_answer:
            raise AnswerTooLarge(message.id, f"more than {estimate}", max_answer)
    data = type(message).__pydantic_serializer__.to_json(message, by_alias=True, exclude_unset=True)
    if max_answer is not None and len(data) > max_answer and isinstance(message, types.JSONRPCResponse):
        raise AnswerTooLarge(message.id, len(data), max_answer)
    return data


def encode_plain(message: dict) -> bytes:
    """A JSON-RPC message built as plain JSON values, as the SDK's serializer writes it
    (pydantic-core's: the same bytes, and five times faster than ``json.dumps`` on a
    multi-megabyte answer, which would hold the event loop that long)."""
    return pydantic_core.to_json(message)


def encode_result(msg_id: Any, result: dict, max_answer: int | None = None) -> bytes:
    """A JSON-RPC response (no newline); over ``max_answer`` bytes raises ``AnswerTooLarge``
    (before serialising when its strings alone are already too many)."""
    if max_answer is not None:
        estimate = _text_size(result, max_answer)
        if estimate > max_answer:
            raise AnswerTooLarge(msg_id, f"more than {estimate}", max_answer)
    data = encode_plain({"jsonrpc": "2.0", "id": msg_id, "result": result})
    if max_answer is not None and len(data) > max_answer:
        raise AnswerTooLarge(msg_id, len(data), max_answer)
    return data


def _request_id(line: bytes) -> Any:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)) and not isinstance(obj.get("id"), bool):
        return obj["id"]
    return None


class _Calls:
    """The calls of one connection that hold a place of the door's ``calls`` semaphore, by id.

    A place is taken before a request reaches the session and given back when its answer
    (result or error) is written or dropped, when the peer cancels it (a cancelled request
    is never answered), or when the connection ends."""

    def __init__(self, calls: asyncio.Semaphore):
        self.calls = calls
        self.held: dict[Any, int] = {}

    async def take(self, msg_id: Any) -> None:
        await self.calls.acquire()
        key = str(msg_id)  # as the session correlates ids: 7 and "7" are one
        self.held[key] = self.held.get(key, 0) + 1

    def give(self, msg_id: Any) -> None:
        key = str(msg_id)
        n = self.held.get(key, 0)
        if n <= 0:
            return
        if n == 1:
            del self.held[key]
        else:
            self.held[key] = n - 1
        self.calls.release()

    def give_all(self) -> None:
        for n in self.held.values():
            for _ in range(n):
                self.calls.release()
        self.held.clear()

    def __bool__(self) -> bool:
        return bool(self.held)


async def serve_connection(server, agent: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           limits: Limits = DEFAULT, calls: asyncio.Semaphore | None = None,
                           refused: Callable[[str, dict], None] | None = None) -> None:
    """Serve one MCP session for ``agent`` over an accepted unix-socket connection, bounded:

    * a line over ``limits.max_request`` is dropped with an error (at most that much of an
      unfinished line is kept);
    * at most ``calls`` (a semaphore shared by the agent's connections; default
      ``limits.calls_per_door`` for this one) requests run at once; more wait unread;
    * every line out goes through one ``LineWriter``: a peer that does not read an answer
      within ``limits.slow_reader_timeout`` is cut off;
    * an answer over ``limits.max_answer`` bytes is replaced by an error saying so;
    * no complete request for ``limits.idle_timeout`` seconds while no call runs: closed.

    The requests are run by the SDK's request kernel through a ``DoorSession``
    (``crowdtui.hub.door_session``: the SDK's stream dispatcher, lean). When the connection
    ends, the session's requests are cancelled and its buffers dropped. ``refused(reason,
    detail)`` hears of each request, answer or reader refused (for a rate-limited event).
    """
    DOOR_AGENT.set(agent)
    lowlevel = server._lowlevel_server  # the MCPServer's protocol engine (what run_stdio_async drives)
    out = LineWriter(writer, limits.slow_reader_timeout)
    running = _Calls(calls if calls is not None else asyncio.Semaphore(limits.calls_per_door))
    streams: set[str] = set()  # ids of this connection's open notification streams
    max_line = limits.max_request
    last_request = time.monotonic()
    closing = False  # closed as idle: lines read after that are not run (the peer may send them again)
    ended = asyncio.Event()  # the peer is gone or too slow: end the session

    def report(reason: str, **detail: Any) -> None:
        if refused is not None:
            refused(reason, detail)

    def encode(kind: str, msg_id: Any, payload: Any) -> bytes:
        if kind == "result":
            try:
                data = encode_result(msg_id, payload, limits.max_answer)
            except AnswerTooLarge as exc:
                report("answer_too_large", limit=exc.limit, size=exc.size)
                return exc.line
        elif kind == "error":
            data = encode_message(types.JSONRPCError(jsonrpc="2.0", id=msg_id, error=payload))
        else:
            data = encode_plain(payload)
        return data + b"\n"

    async def emit(kind: str, msg_id: Any, payload: Any) -> None:
        """Write one message of the session (made when its turn to be written comes); an
        answer gives back its call place."""
        answered = msg_id if kind in ("result", "error") else None
        if answered is not None and str(answered) in streams:  # a stream ended: it held no call place
            streams.discard(str(answered))
            answered = None
        try:
            await out.send_made(lambda: encode(kind, msg_id, payload))
        except SlowReader:
            report("slow_reader", timeout=limits.slow_reader_timeout)
            ended.set()
            raise
        except (ConnectionError, anyio.ClosedResourceError):
            ended.set()
            raise
        finally:
            if answered is not None:
                running.give(answered)

    async def pump_in(session: DoorSession) -> None:
        nonlocal last_request
        try:
            async for line in read_lines(reader, max_line, limits.read_chunk):
                if closing:
                    break
                last_request = time.monotonic()
                if line is None:
                    report("request_too_large", limit=max_line)
                    await out.send(_error_line(
                        -32600, f"request larger than {max_line} bytes was dropped; send smaller requests "
                                f"(messages are limited to 64 KiB, documents to 1 MiB)"))
                    continue
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception:
                    try:
                        json.loads(line)
                    except ValueError:
                        await out.send(_error_line(-32700, "parse error: a line was not JSON; send one JSON-RPC message per line"))
                        continue
                    await out.send(_error_line(-32600, "invalid request: not a JSON-RPC 2.0 message (needs jsonrpc, method or result/error)", _request_id(line)))
                    continue
                del line
                if isinstance(message, types.JSONRPCRequest) and message.method in STREAMS:
                    # a session's notification stream: open for the session's life, not a call
                    streams.add(str(message.id))
                    if len(streams) > limits.streams_per_connection:
                        streams.discard(str(message.id))
                        report("too_many_streams", limit=limits.streams_per_connection)
                        await out.send(_error_line(
                            -32600, f"at most {limits.streams_per_connection} {message.method} per connection; "
                                    "open another connection for another session", message.id))
                        continue
                elif isinstance(message, types.JSONRPCRequest):
                    await running.take(message.id)
                    if closing:
                        break
                elif isinstance(message, types.JSONRPCNotification) and message.method == "notifications/cancelled":
                    params = message.params or {}
                    if isinstance(params, dict) and "requestId" in params:
                        running.give(params["requestId"])  # never answered: its place is free
                await session.receive(message)
                del message
        except (ConnectionError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def watch_idle() -> None:
        nonlocal closing
        while True:
            remaining = last_request + limits.idle_timeout - time.monotonic()
            if remaining > 0 or running:  # a running call (a waiting get_messages) is not idleness
                await anyio.sleep(remaining if remaining > 0 else min(1.0, limits.idle_timeout))
                continue
            closing = True
            try:
                await out.send(_error_line(IDLE_CLOSED, f"closed: no request for {limits.idle_timeout:.0f} s; "
                                                        f"connect again when you have one"))
            except ConnectionError:
                pass
            ended.set()
            return

    session: DoorSession | None = None
    try:
        async with lowlevel.lifespan(lowlevel) as lifespan_state:  # as Server.run enters it, once per connection
            session = DoorSession(lowlevel, lifespan_state, emit, _init_options(lowlevel))
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_idle)

                async def until_ended() -> None:
                    await ended.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(until_ended)
                await pump_in(session)
                tg.cancel_scope.cancel()
            # the requests still running end with the connection (the SDK's dispatcher does the same)
            await session.close()
    except (ConnectionError, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    finally:
        if session is not None and not session.closed:
            with anyio.CancelScope(shield=True):
                await session.close()
        running.give_all()
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1)
        except Exception:
            writer.transport.abort()


def _init_options(lowlevel) -> Any:
    """The server's initialization options (what ``initialize`` answers), made once per server."""
    options = getattr(lowlevel, "_crowd_init_options", None)
    if options is None:
        options = lowlevel.create_initialization_options()
        lowlevel._crowd_init_options = options
    return options


async def _write_messages(write_recv, out: LineWriter) -> None:
    """Send each outgoing session message as one JSON line, until the stream closes."""
    try:
        async for session_message in write_recv:
            await out.send(encode_message(session_message.message), b"\n")
    except (ConnectionError, anyio.ClosedResourceError):
        pass


@asynccontextmanager
async def unix_client(path: Path):
    """An MCP client transport over a hub door: ``async with Client(unix_client(p)) as c``."""
    sock = connect_unix(path)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    read_send, read_recv = create_context_streams[SessionMessage | Exception](16)
    write_send, write_recv = create_context_streams[SessionMessage](16)

    async def pump_in() -> None:
        try:
            async for line in read_lines(reader, 64 * MAX_LINE):
                if not line:
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception as exc:
                    await read_send.send(exc)
                    continue
                await read_send.send(SessionMessage(message))
        except (ConnectionError, anyio.ClosedResourceError):
            pass
        finally:
            await read_send.aclose()

    def pump_out():
        return _write_messages(write_recv, LineWriter(writer, CLIENT_WRITE_TIMEOUT))

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        try:
            yield read_recv, write_send
        finally:
            tg.cancel_scope.cancel()
            writer.close()
