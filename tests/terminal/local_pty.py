"""A real local PTY session with the PtySession shape: os.openpty + a subprocess.

Used by the widget tests that do not need a container. Everything is real: the
kernel PTY, the child process, its terminal size and SIGWINCH.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import subprocess
import termios
from typing import Callable, Optional


class LocalViewer:
    def __init__(self, session: "LocalPtySession", on_output, on_close) -> None:
        self.session = session
        self.on_output = on_output
        self.on_close = on_close

    def write(self, data: bytes) -> None:
        os.write(self.session.master, data)

    def resize(self, rows: int, cols: int) -> None:
        self.session.resize(rows, cols)

    def close(self) -> None:
        if self in self.session.viewers:
            self.session.viewers.remove(self)


class LocalPtySession:
    """One child process on a fresh PTY, shared by any number of viewers."""

    def __init__(self, argv: list[str], *, rows: int = 24, cols: int = 80, env: Optional[dict] = None) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        full_env = {"TERM": "xterm-256color", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8"}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=full_env, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0), close_fds=True,
        )
        os.close(slave)
        self.viewers: list[LocalViewer] = []
        self._backlog = bytearray()
        self.closed = False
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self.master, False)
        self._loop.add_reader(self.master, self._readable)

    @property
    def backlog(self) -> bytes:
        return bytes(self._backlog)

    def add_viewer(self, on_output: Callable[[bytes], None], on_close=None) -> LocalViewer:
        viewer = LocalViewer(self, on_output, on_close)
        self.viewers.append(viewer)
        return viewer

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._finish()
            return
        self._backlog += data
        del self._backlog[:-65536]
        for viewer in list(self.viewers):
            viewer.on_output(data)

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._loop.remove_reader(self.master)
        for viewer in list(self.viewers):
            if viewer.on_close:
                viewer.on_close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self.master)
        os.close(self.master)
