"""One ``serve`` per workspace: an ``fcntl`` lock on ``.crowd/run/serve.lock`` that names its holder.

The kernel drops the lock when the holder dies, even by SIGKILL, so a crashed serve
never blocks the next one.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from crowdtui.errors import CrowdError


class ServeAlreadyRunning(CrowdError):
    pass


class ServeLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def holder(self) -> dict:
        try:
            data = json.loads(self.path.read_text() or "{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            h = self.holder()
            since = time.strftime("%H:%M:%S UTC", time.gmtime(h["started"])) if h.get("started") else "?"
            raise ServeAlreadyRunning(
                f"crowdtui serve already runs for this workspace (pid {h.get('pid', '?')}, since {since}, "
                f"{h.get('url', 'starting')}); use it, or stop it first (kill {h.get('pid', 'PID')})"
            ) from None
        self._fd = fd
        self.note(pid=os.getpid(), started=time.time())

    def note(self, **info) -> None:
        """Record facts about the holder (pid, url) in the lock file."""
        if self._fd is None:
            return
        data = {**self.holder(), **info} if info.keys() - {"pid", "started"} else info
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (json.dumps(data) + "\n").encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
