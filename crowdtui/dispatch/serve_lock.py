"""One ``serve`` per workspace: a lock on ``.crowd/run/serve.lock`` that names its holder."""

from __future__ import annotations

from crowdtui.errors import CrowdError
from crowdtui.process_lock import ProcessLock, since


class ServeAlreadyRunning(CrowdError):
    pass


class ServeLock(ProcessLock):
    def acquire(self) -> None:  # type: ignore[override]
        super().acquire(
            lambda h: ServeAlreadyRunning(
                f"crowdtui serve already runs for this workspace (pid {h.get('pid', '?')}, since {since(h)}, "
                f"{h.get('url', 'starting')}); use it, or stop it first (kill {h.get('pid', 'PID')})"
            )
        )
