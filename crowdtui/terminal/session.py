"""The shape of a PTY session a terminal widget can attach to.

`crowdtui.runtime.pty.PtySession` has this shape; so does any local PTY-backed
session (tests use one built on ``os.openpty``). Callbacks run on the event loop.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, runtime_checkable


@runtime_checkable
class Viewer(Protocol):
    """One viewer's handle on a session: type into it, resize it, leave it."""

    def write(self, data: bytes) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class TerminalSession(Protocol):
    """A PTY shared by any number of viewers."""

    @property
    def backlog(self) -> bytes:
        """Recent output, painted when a viewer connects."""
        ...

    def add_viewer(
        self,
        on_output: Callable[[bytes], None],
        on_close: Optional[Callable[[], None]] = None,
    ) -> Viewer: ...
