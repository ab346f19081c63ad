"""One process of a kind per workspace: an ``fcntl`` lock file that names its holder.

The kernel drops the lock when the holder dies, even by SIGKILL, so a crashed
process never blocks the next one. The file holds a JSON object about the holder
(pid, start time, anything ``note`` adds) for the error the next one shows.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Callable


class ProcessLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict:
        """What the current holder wrote about itself ({} when unknown)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        if isinstance(data, int):  # files written by older versions held only the pid
            return {"pid": data}
        return data if isinstance(data, dict) else {}

    def acquire(self, refuse: Callable[[dict], Exception]) -> None:
        """Take the lock, or raise ``refuse(holder)`` when another process has it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            from crowdtui.errors import CrowdError

            raise CrowdError(f"cannot take the lock {self.path} ({exc.strerror}); the workspace must be "
                             "writable by this user (a read-only or full disk?)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise refuse(self.holder()) from None
        self._fd = fd
        self.note(pid=os.getpid(), started=time.time())

    def note(self, **info) -> None:
        """Record facts about the holder in the lock file (pid and start are kept)."""
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


def lock_held(path: Path) -> bool:
    """True while some process holds the lock at ``path`` (asked without taking it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def since(info: dict) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(info["started"])) if info.get("started") else "?"
