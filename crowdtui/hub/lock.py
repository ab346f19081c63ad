"""One hub per workspace: an ``fcntl`` lock on ``.crowd/run/hub.lock`` naming its holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from crowdtui.errors import CrowdError


class HubAlreadyRunning(CrowdError):
    pass


class HubLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise HubAlreadyRunning(
                f"the hub of this workspace is already running (pid {self.holder()}, lock {self.path}); "
                "use that one or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
