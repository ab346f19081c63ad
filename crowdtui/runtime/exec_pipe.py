"""A process started in an agent's container by ``exec`` without a terminal: its stdin, and
its stdout and stderr apart (for programs that speak a protocol on stdio, like an Agent
Client Protocol adapter, and for commands run on an agent's behalf).

Without a TTY the engine multiplexes the two output streams on the one hijacked socket,
each frame led by an 8-byte header (stream: 1 stdout, 2 stderr; 3 zero bytes; a big-endian
32-bit length). :class:`ExecPipe` is an :class:`~crowdtui.runtime.pty.ExecSession` (same
non-blocking byte path, same way of ending the process and what it started on close) whose
output is split back into the two streams; nothing is kept as a backlog.

``close_stdin()`` half-closes the socket: the process reads end of file (``cat > FILE``
ends), while its output still arrives.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct
from collections.abc import Callable
from typing import Any

from crowdtui.runtime.pty import ExecSession, TerminalError, _api, _inspect

log = logging.getLogger(__name__)

HEADER = struct.Struct(">BxxxI")
STDOUT, STDERR = 1, 2
MAX_FRAME = 16 * 1024 * 1024  # a larger frame header is not the engine's: the stream is closed

StreamCallback = Callable[[bytes], None]


class ExecPipe(ExecSession):
    """One exec'd process without a TTY: ``write`` to its stdin, ``on_stdout`` / ``on_stderr``
    get its output as it arrives, ``on_close`` once the stream has ended."""

    def __init__(self, client: Any, container_id: str, sock_io: Any, exec_id: str, *, label: str = "",
                 token: str = "", user: str = "", on_stdout: StreamCallback | None = None,
                 on_stderr: StreamCallback | None = None, on_close: Callable[[], None] | None = None):
        self._frames = bytearray()
        self.on_stdout = on_stdout or (lambda data: None)
        self.on_stderr = on_stderr or (lambda data: None)
        self.on_close = on_close
        super().__init__(client, container_id, sock_io, exec_id, label=label, token=token, user=user)

    def _deliver(self, data: bytes) -> None:
        self.bytes_out += len(data)
        frames = self._frames
        frames += data
        at = 0
        while len(frames) - at >= HEADER.size:
            stream, size = HEADER.unpack_from(frames, at)
            if stream not in (0, STDOUT, STDERR) or size > MAX_FRAME:
                log.warning("exec %s: not a multiplexed stream (frame %s of %s bytes); closing", self.label,
                            stream, size)
                del frames[:]
                self._loop.call_soon(self._begin_close)
                return
            if len(frames) - at < HEADER.size + size:
                break
            payload = bytes(frames[at + HEADER.size:at + HEADER.size + size])
            at += HEADER.size + size
            try:
                (self.on_stderr if stream == STDERR else self.on_stdout)(payload)
            except Exception:
                log.exception("exec %s: an output callback failed", self.label)
        del frames[:at]

    def _engine_resize(self, rows: int, cols: int) -> None:
        """No terminal, no size."""

    def close_stdin(self) -> None:
        """End of file on the process's stdin, once what was written has been sent."""
        if self.closed:
            return
        if self._writing:
            self._loop.call_later(0.01, self.close_stdin)
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            log.debug("exec %s: half-close failed: %s", self.label, exc)

    def _begin_close(self) -> None:
        was_closed = self.closed
        super()._begin_close()
        if not was_closed and self.on_close is not None:
            try:
                self.on_close()
            except Exception:
                log.exception("exec %s: the close callback failed", self.label)

    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the output has ended and return the exit code (None if it cannot be had)."""
        await asyncio.wait_for(self.wait_closed(), timeout)
        for _ in range(50):  # the engine marks the exec done a moment after its streams close
            code = await self.exit_code()
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        return None


async def open_pipe(client: Any, container_id: str, cmd: list[str], *, env: dict[str, str] | None = None,
                    user: str = "", workdir: str | None = None, on_stdout: StreamCallback | None = None,
                    on_stderr: StreamCallback | None = None,
                    on_close: Callable[[], None] | None = None) -> ExecPipe:
    """Start ``cmd`` in the running container without a TTY, stdin open; see :class:`ExecPipe`."""
    api = _api(client)
    token = secrets.token_hex(8)
    environment = {**(env or {}), "CROWD_EXEC": token}

    def start():
        info = _inspect(api, container_id)
        if not info["State"].get("Running"):
            raise TerminalError(f"container {info['Name'].lstrip('/')} is not running "
                                f"({info['State'].get('Status')}); start it first")
        exec_id = api.exec_create(container_id, cmd, stdin=True, tty=False, stdout=True, stderr=True,
                                  environment=environment, user=user, workdir=workdir)["Id"]
        sock_io = api.exec_start(exec_id, tty=False, socket=True)
        return exec_id, sock_io, info["Name"].lstrip("/")

    exec_id, sock_io, name = await asyncio.to_thread(start)
    return ExecPipe(client, container_id, sock_io, exec_id, label=f"{name} {cmd[0]}", token=token, user=user,
                    on_stdout=on_stdout, on_stderr=on_stderr, on_close=on_close)


async def run_in(client: Any, container_id: str, cmd: list[str], *, stdin: bytes = b"", user: str = "",
                 workdir: str | None = None, env: dict[str, str] | None = None, max_output: int = 16 * 1024 * 1024,
                 timeout: float = 60.0) -> tuple[int | None, bytes, bytes]:
    """Run ``cmd`` in the container to its end: ``stdin`` given whole, (exit code, stdout, stderr)
    returned, each output bounded by ``max_output`` (the process is ended when it passes that)."""
    out, err = bytearray(), bytearray()
    pipe: ExecPipe | None = None
    too_much = False

    def keep(buf: bytearray) -> StreamCallback:
        def take(data: bytes) -> None:
            nonlocal too_much
            if len(buf) + len(data) > max_output:
                too_much = True
                buf.extend(data[:max_output - len(buf)])
                if pipe is not None:
                    asyncio.get_running_loop().create_task(pipe.close())
            else:
                buf.extend(data)
        return take

    pipe = await open_pipe(client, container_id, cmd, env=env, user=user, workdir=workdir,
                           on_stdout=keep(out), on_stderr=keep(err))
    try:
        if stdin:
            pipe.write(stdin)
        pipe.close_stdin()
        code = await pipe.wait(timeout)
    except asyncio.TimeoutError:
        await pipe.close()
        raise TerminalError(f"{cmd[0]} in the container did not end within {timeout:.0f} s") from None
    if too_much:
        raise TerminalError(f"{cmd[0]} in the container wrote more than {max_output} bytes")
    return code, bytes(out), bytes(err)
