"""Run an ASGI app with uvicorn on a 127.0.0.1 socket we bind ourselves (port 0: any free one)."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the process that runs it decides."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class LocalServer:
    """``await LocalServer(app).start()`` binds and serves; ``url``; ``await stop()``."""

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server = None
        self._task: asyncio.Task | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "LocalServer":
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
        # with proto 0 every response waited for the client's delayed ACK (~40 ms, Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            from crowdtui.errors import CrowdError

            raise CrowdError(f"cannot listen on {self.host}:{self.port} ({exc.strerror}); "
                             "pick another port with --port") from None
        sock.listen(512)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except (asyncio.TimeoutError, Exception):
                self._task.cancel()
        if self._sock is not None:
            self._sock.close()
