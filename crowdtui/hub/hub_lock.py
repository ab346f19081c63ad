"""One hub per workspace: a lock on ``.crowd/run/hub.lock`` naming its holder."""

from __future__ import annotations

from crowdtui.errors import CrowdError
from crowdtui.process_lock import ProcessLock, since


class HubAlreadyRunning(CrowdError):
    pass


class HubLock(ProcessLock):
    def acquire(self) -> None:  # type: ignore[override]
        super().acquire(
            lambda h: HubAlreadyRunning(
                f"the hub of this workspace is already running (pid {h.get('pid', 'unknown')}, "
                f"since {since(h)}, lock {self.path}); use that one or stop it first"
            )
        )
