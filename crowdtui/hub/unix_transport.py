"""MCP over a unix socket: newline-delimited JSON-RPC (like stdio), one session per connection.

Server side: ``serve_connection`` runs one MCP server session over an accepted
connection, with ``DOOR_AGENT`` bound to the agent whose socket it arrived on. Lines
that are not JSON, not JSON-RPC, or longer than ``MAX_LINE`` get a JSON-RPC error
(the connection keeps working). Client side: ``unix_client`` is an MCP client
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
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage

from crowdtui.hub.identity import DOOR_AGENT

MAX_LINE = 1024 * 1024  # one JSON-RPC message; qms caps message bodies at 64 KiB anyway
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


def _error_line(code: int, message: str, msg_id: Any = None) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}) + "\n").encode()


async def read_lines(reader: asyncio.StreamReader, max_line: int = MAX_LINE):
    """Yield complete lines (bytes, without the newline); an oversized line yields ``None``."""
    buf = bytearray()
    discarding = False
    while True:
        chunk = await reader.read(65536)
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
                        buf.clear()
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
            buf.clear()
            start = nl + 1


def _request_id(line: bytes) -> Any:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)) and not isinstance(obj.get("id"), bool):
        return obj["id"]
    return None


async def serve_connection(server, agent: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           max_line: int = MAX_LINE) -> None:
    """Serve one MCP session for ``agent`` over an accepted unix-socket connection."""
    DOOR_AGENT.set(agent)
    lowlevel = server._lowlevel_server  # the MCPServer's protocol engine (what run_stdio_async drives)
    read_send, read_recv = create_context_streams[SessionMessage | Exception](16)
    write_send, write_recv = create_context_streams[SessionMessage](16)

    def send_raw(data: bytes) -> None:
        if not writer.is_closing():
            writer.write(data)

    async def pump_in() -> None:
        try:
            async for line in read_lines(reader, max_line):
                if line is None:
                    send_raw(_error_line(-32600, f"request larger than {max_line} bytes was dropped; send smaller requests (message bodies are limited to 64 KiB)"))
                    continue
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except Exception:
                    try:
                        json.loads(line)
                    except ValueError:
                        send_raw(_error_line(-32700, "parse error: a line was not JSON; send one JSON-RPC message per line"))
                        continue
                    send_raw(_error_line(-32600, "invalid request: not a JSON-RPC 2.0 message (needs jsonrpc, method or result/error)", _request_id(line)))
                    continue
                await read_send.send(SessionMessage(message))
        except (ConnectionError, anyio.ClosedResourceError):
            pass
        finally:
            await read_send.aclose()

    def pump_out():
        return _write_messages(write_recv, send_raw, writer)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            await lowlevel.run(read_recv, write_send, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()
    except (ConnectionError, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:
            pass


async def _write_messages(write_recv, write, writer) -> None:
    """Send each outgoing session message as one JSON line, until the stream closes."""
    try:
        async for session_message in write_recv:
            data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
            write(data.encode() + b"\n")
            await writer.drain()
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
        return _write_messages(write_recv, writer.write, writer)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump_in)
        tg.start_soon(pump_out)
        try:
            yield read_recv, write_send
        finally:
            tg.cancel_scope.cancel()
            writer.close()
