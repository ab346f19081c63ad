"""Shared terminal sessions on agent containers.

A :class:`PtySession` is one raw attach stream to a container that runs with a TTY
(or to an ``exec`` in it, see :func:`open_exec`). Any number of :class:`Viewer` s
share it: every viewer gets every byte of output, any viewer can type and resize.
The last ~64 KiB of output is kept as ``backlog`` so a new viewer can paint the
present screen.

The byte path never blocks the event loop: the raw socket is non-blocking, read by
``loop.add_reader`` and written by ``send`` with the rest queued behind
``loop.add_writer``. Engine calls (attach, resize, inspect) run in threads. Bytes are
passed on as they arrive; a UTF-8 character split across two reads is the viewer's
to reassemble (``pyte.ByteStream`` does, and ``crowdtui attach`` does).

Resizes: the container's terminal has one size, so the last viewer to resize sets it
for everyone (as with ``tmux``'s ``window-size latest``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from crowdtui.errors import CrowdError

log = logging.getLogger(__name__)

BACKLOG_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
# The engine watches attach input for a detach sequence (default ctrl-p,ctrl-q, which
# would hold back every ctrl-p). This one is never typed by accident; crowdtui's own
# detach key (ctrl-]) is handled by the viewer, not the engine.
ENGINE_DETACH_KEYS = "ctrl-^,ctrl-_,ctrl-^,ctrl-_"
DEFAULT_SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi"]

OutputCallback = Callable[[bytes], None]
CloseCallback = Callable[[], None]


class TerminalError(CrowdError):
    """A terminal could not be opened (container gone, stopped, or without a TTY)."""


def _api(client: Any) -> Any:
    """The low-level APIClient of a DockerClient (or the APIClient itself)."""
    return getattr(client, "api", client)


class Viewer:
    """One viewer of a session: gets its output, may type and resize."""

    def __init__(self, session: PtySession, on_output: OutputCallback, on_close: CloseCallback | None):
        self.session = session
        self.on_output = on_output
        self.on_close = on_close
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.session.write(data)

    def resize(self, rows: int, cols: int) -> None:
        if not self.closed:
            self.session.resize(rows, cols)

    def close(self) -> None:
        """Detach this viewer only; the session and the agent keep running."""
        if not self.closed:
            self.closed = True
            self.session._viewers.pop(self, None)


class PtySession:
    """One raw attach stream to a TTY container, shared by any number of viewers."""

    def __init__(self, client: Any, container_id: str, sock_io: Any, *, label: str = ""):
        self.client = client
        self.container_id = container_id
        self.label = label or container_id[:12]
        self._loop = asyncio.get_running_loop()
        self._sock_io = sock_io
        # a SocketIO over the engine's socket; over tcp+TLS docker-py hands the SSLSocket itself
        self._sock: socket.socket = getattr(sock_io, "_sock", sock_io)
        self._fd = self._sock.fileno()
        self._viewers: dict[Viewer, None] = {}  # insertion-ordered
        self._backlog: collections.deque[bytes] = collections.deque()  # recent output chunks
        self._backlog_size = 0
        self._out = bytearray()  # input not yet accepted by the socket
        self._writing = False
        self._size: tuple[int, int] | None = None
        self._resize_task: asyncio.Task | None = None
        self._resize_wanted: tuple[int, int] | None = None
        self._closed = asyncio.Event()
        self.closed = False
        self.bytes_out = 0  # output bytes received, for stats and benchmarks
        self._sock.setblocking(False)
        pending = self._drain_http_buffer()
        self._loop.add_reader(self._fd, self._on_readable)
        if pending:
            self._deliver(pending)

    # -- opening ----------------------------------------------------------------

    @classmethod
    async def open(cls, client: Any, container_id: str) -> PtySession:
        """Attach to a running container that has a TTY (stdin, stdout, stderr; no old logs)."""
        api = _api(client)

        def attach():
            info = _inspect(api, container_id)
            if not info["State"].get("Running"):
                raise TerminalError(
                    f"container {info['Name'].lstrip('/')} is not running "
                    f"({info['State'].get('Status')}); start it first"
                )
            if not info["Config"].get("Tty") or not info["Config"].get("OpenStdin"):
                raise TerminalError(
                    f"container {info['Name'].lstrip('/')} has no terminal (it was created without "
                    "tty and stdin_open); recreate it with crowdtui"
                )
            sock_io = api.attach_socket(
                container_id,
                params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "logs": 0,
                        "detachKeys": ENGINE_DETACH_KEYS},
            )
            return sock_io, info["Name"].lstrip("/")

        sock_io, name = await asyncio.to_thread(attach)
        return cls(client, container_id, sock_io, label=name)

    def _drain_http_buffer(self) -> bytes:
        """Output the HTTP client read ahead together with the response headers, if any."""
        response = getattr(self._sock_io, "_response", None)
        try:
            fp = response.raw._fp.fp  # the BufferedReader over the socket
            data = fp.peek(READ_CHUNK) if fp is not None else b""
            if data:
                fp.read(len(data))
            return data or b""
        except Exception:
            return b""

    # -- viewers ----------------------------------------------------------------

    def add_viewer(
        self, on_output: OutputCallback, on_close: CloseCallback | None = None, *, replay: bool = False
    ) -> Viewer:
        """Add a viewer; its callbacks run on the event loop.

        With ``replay`` the viewer first gets the ``backlog`` (in this call), so it sees
        everything since the session opened, up to 64 KiB, with nothing missed or doubled.
        """
        viewer = Viewer(self, on_output, on_close)
        if replay and self._backlog:
            on_output(self.backlog)
        if self.closed:
            viewer.closed = True
            if on_close is not None:
                self._loop.call_soon(on_close)
            return viewer
        self._viewers[viewer] = None
        return viewer

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    @property
    def backlog(self) -> bytes:
        """The last ``BACKLOG_BYTES`` of output (less if there has not been that much)."""
        data = b"".join(self._backlog)
        return data[-BACKLOG_BYTES:] if len(data) > BACKLOG_BYTES else data

    @property
    def size(self) -> tuple[int, int] | None:
        """The last (rows, cols) asked for through this session, if any."""
        return self._size

    # -- output -----------------------------------------------------------------

    def _on_readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError, TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as exc:
                log.debug("terminal %s: read failed: %s", self.label, exc)
                self._begin_close()
                return
            if not data:
                self._begin_close()
                return
            self._deliver(data)
            # TLS: what was decrypted beyond this read wakes no selector; take it now
            if not isinstance(self._sock, ssl.SSLSocket) or not self._sock.pending():
                return

    def _deliver(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self._backlog.append(data)
        self._backlog_size += len(data)
        # drop whole chunks while what stays still covers BACKLOG_BYTES (no copying per read)
        while self._backlog_size - len(self._backlog[0]) >= BACKLOG_BYTES:
            self._backlog_size -= len(self._backlog.popleft())
        for viewer in list(self._viewers):
            try:
                viewer.on_output(data)
            except Exception:
                log.exception("terminal %s: a viewer failed on output; detaching it", self.label)
                viewer.close()

    # -- input ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send input to the program. Never blocks; what the socket cannot take yet is queued."""
        if self.closed or not data:
            return
        if self._writing:
            self._out += data
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError, TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        except OSError as exc:
            log.debug("terminal %s: write failed: %s", self.label, exc)
            self._begin_close()
            return
        if sent < len(data):
            self._out += data[sent:]
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError, TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            self._begin_close()
            return
        del self._out[:sent]
        if not self._out:
            self._writing = False
            self._loop.remove_writer(self._fd)

    # -- resize -----------------------------------------------------------------

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal size (the engine call runs in a thread; bursts collapse to the last)."""
        if self.closed:
            return
        rows, cols = max(1, int(rows)), max(1, int(cols))
        self._size = (rows, cols)
        self._resize_wanted = (rows, cols)
        if self._resize_task is None or self._resize_task.done():
            self._resize_task = self._loop.create_task(self._resize_loop())

    async def _resize_loop(self) -> None:
        while self._resize_wanted is not None and not self.closed:
            rows, cols = self._resize_wanted
            self._resize_wanted = None
            try:
                await asyncio.to_thread(self._engine_resize, rows, cols)
            except Exception as exc:  # the container may have just stopped
                log.debug("terminal %s: resize to %sx%s failed: %s", self.label, rows, cols, exc)

    def _engine_resize(self, rows: int, cols: int) -> None:
        _api(self.client).resize(self.container_id, height=rows, width=cols)

    async def resize_now(self, rows: int, cols: int) -> None:
        """Resize and wait until the engine has done it (for callers that need the order)."""
        self.resize(rows, cols)
        while self._resize_task is not None and not self._resize_task.done():
            await asyncio.shield(self._resize_task)

    # -- closing ----------------------------------------------------------------

    def _begin_close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._loop.remove_reader(self._fd)
            if self._writing:
                self._loop.remove_writer(self._fd)
        except Exception:
            pass
        self._writing = False
        for closer in (self._sock.close, self._sock_io.close, self._close_response):
            try:
                closer()
            except Exception:
                pass
        viewers, self._viewers = list(self._viewers), {}
        for viewer in viewers:
            viewer.closed = True
            if viewer.on_close is not None:
                try:
                    viewer.on_close()
                except Exception:
                    log.exception("terminal %s: a viewer failed on close", self.label)
        self._closed.set()

    def _close_response(self) -> None:
        response = getattr(self._sock_io, "_response", None)
        if response is not None:
            response.close()

    async def close(self) -> None:
        """Close the stream for every viewer. The container keeps running."""
        self._begin_close()
        if self._resize_task is not None and not self._resize_task.done():
            self._resize_task.cancel()

    async def wait_closed(self) -> None:
        await self._closed.wait()


class ExecSession(PtySession):
    """A terminal on a process started in the container by ``exec`` (see :func:`open_exec`).

    Closing it ends the process too (SIGHUP to it and its process groups, then SIGKILL
    if it is still there a second later): the engine would otherwise keep an abandoned
    shell running, holding one of the container's pids, until the container stops.
    """

    def __init__(self, client: Any, container_id: str, sock_io: Any, exec_id: str, *,
                 label: str = "", token: str = "", user: str = ""):
        self.exec_id = exec_id
        self.token = token  # CROWD_EXEC=<token> in the process's environment finds it again
        self.user = user
        super().__init__(client, container_id, sock_io, label=label)

    def _engine_resize(self, rows: int, cols: int) -> None:
        _api(self.client).exec_resize(self.exec_id, height=rows, width=cols)

    async def exit_code(self) -> int | None:
        """The process's exit code once it has ended (None while it runs)."""
        info = await asyncio.to_thread(_api(self.client).exec_inspect, self.exec_id)
        return None if info.get("Running") else info.get("ExitCode")

    async def close(self) -> None:
        await super().close()
        try:
            await asyncio.to_thread(self._end_process)
        except Exception as exc:  # the container may be gone already
            log.debug("exec %s: ending it failed: %s", self.exec_id[:12], exc)

    def _end_process(self, grace: float = 1.0) -> None:
        import time

        api = _api(self.client)
        if not self.token or not api.exec_inspect(self.exec_id).get("Running"):
            return
        for signal_name in ("HUP", "KILL"):
            killer = api.exec_create(self.container_id, ["sh", "-c", _KILL_SCRIPT, "sh", self.token, signal_name],
                                     user=self.user, stdout=True, stderr=True)["Id"]
            api.exec_start(killer)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not api.exec_inspect(self.exec_id).get("Running"):
                    return
                time.sleep(0.05)


# Signals every process whose environment holds CROWD_EXEC=<token>, and its process group.
_KILL_SCRIPT = r"""
t="CROWD_EXEC=$1"
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "$t"; then
    kill -"$2" -- "-$pid" 2>/dev/null
    kill -"$2" "$pid" 2>/dev/null
  fi
done
exit 0
"""


def _inspect(api: Any, container_id: str) -> dict:
    from docker.errors import NotFound

    try:
        return api.inspect_container(container_id)
    except NotFound:
        raise TerminalError(f"container {container_id[:12]} no longer exists; start the agent again") from None


async def open_exec(
    client: Any,
    container_id: str,
    cmd: list[str] | None = None,
    *,
    rows: int = 24,
    cols: int = 80,
    env: dict[str, str] | None = None,
    user: str = "",
    workdir: str | None = None,
) -> ExecSession:
    """Start ``cmd`` (default: bash if the image has it, else sh) in the container with a TTY.

    Returns a session like :class:`PtySession`; it closes when the process ends, and
    closing it ends the process (and what it started).
    """
    import secrets

    api = _api(client)
    token = secrets.token_hex(8)
    environment = {"TERM": "xterm-256color", **(env or {}), "CROWD_EXEC": token}

    def start():
        info = _inspect(api, container_id)
        if not info["State"].get("Running"):
            raise TerminalError(
                f"container {info['Name'].lstrip('/')} is not running "
                f"({info['State'].get('Status')}); start it first"
            )
        exec_id = api.exec_create(
            container_id, cmd or DEFAULT_SHELL, stdin=True, tty=True, stdout=True, stderr=True,
            environment=environment, user=user, workdir=workdir,
        )["Id"]
        sock_io = api.exec_start(exec_id, tty=True, socket=True)
        return exec_id, sock_io, info["Name"].lstrip("/")

    exec_id, sock_io, name = await asyncio.to_thread(start)
    session = ExecSession(client, container_id, sock_io, exec_id, label=f"{name} exec",
                          token=token, user=user)
    try:
        await asyncio.to_thread(api.exec_resize, exec_id, height=rows, width=cols)
        session._size = (rows, cols)
    except Exception as exc:  # a command that ended at once cannot be resized
        log.debug("exec %s: first resize failed: %s", exec_id[:12], exc)
    return session


class SessionPool:
    """One shared :class:`PtySession` per container, opened on first use, re-opened if closed."""

    def __init__(self, client: Any, resolve: Any = None):
        self.client = client
        #: container id -> the client of its engine (several engines); None: ``client`` for all
        self.resolve = resolve
        self._sessions: dict[str, PtySession] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, container_id: str) -> PtySession:
        lock = self._locks.setdefault(container_id, asyncio.Lock())
        async with lock:
            session = self._sessions.get(container_id)
            if session is None or session.closed:
                client = self.client if self.resolve is None else await asyncio.to_thread(self.resolve, container_id)
                session = await PtySession.open(client, container_id)
                self._sessions[container_id] = session
            return session

    def peek(self, container_id: str) -> PtySession | None:
        """The open session of a container, without opening one."""
        session = self._sessions.get(container_id)
        return session if session is not None and not session.closed else None

    async def discard(self, container_id: str) -> None:
        """Close and forget a container's session (e.g. when the container is removed)."""
        session = self._sessions.pop(container_id, None)
        self._locks.pop(container_id, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

