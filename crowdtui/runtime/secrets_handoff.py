"""Hand an agent's secrets to its process at start, through a one-shot unix socket.

The values never enter the container's configuration (so never ``docker inspect``), the
image, the agent's home, logs, events or the database in plain text. Instead:

1. before the container starts, the host binds ``.crowd/ipc/<agent>/secrets.sock`` (only
   that agent's container mounts that folder, at ``/run/crowd``), usable by the agent user;
2. ``crowd-entry`` in the container connects, reads one JSON object ``{name: value}``,
   puts the values into its own environment and execs the agent's command;
3. the host serves exactly one connection from a process of that container, then closes
   and removes the socket. Nothing is written to disk.

:class:`SecretHandoff` is blocking: the runtime uses it from the thread that starts the
container.

An agent on a remote engine gets the same hand-off through its engine's relay
(:class:`RelayedHandoff`): the relay holds ``secrets.sock`` in the agent's own volume (its
``/run/crowd``) while the hub has the values on offer (``crowdtui.hub.relay_secrets``), carries
crowd-entry's one connection to the hub, which answers it once. The socket's folder is the
identity there (the relay cannot see the peer's cgroup): only that agent's container mounts it.
Both wait with the same timeout and ``alive`` checks, and fail with the same lines.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from crowdtui.agent_folder import Finding, ipc_folder
from crowdtui.errors import CrowdError

SOCKET_NAME = "secrets.sock"
HANDOFF_TIMEOUT = 20.0  # seconds the container gets to take its secrets


class HandoffFailed(CrowdError):
    """The container did not take its secrets."""


def _peer(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (Linux SO_PEERCRED)."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def peer_in_container(conn: socket.socket, container_id: str) -> bool:
    """True when the connecting process belongs to ``container_id``.

    Read from the peer's cgroup as the host sees it (``.../docker/<id>`` or
    ``docker-<id>.scope``). When the peer's pid is not visible here (crowdtui itself in
    another pid namespace), the socket's folder is the identity, as for the hub's doors.
    """
    pid, _uid, _gid = _peer(conn)
    if pid <= 0:
        return True
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return True  # gone already or not visible: the folder is the identity
    return container_id in cgroups


class SecretHandoff:
    """A one-shot socket in the agent's IPC folder that serves its secrets once.

    ``with SecretHandoff(ipc_dir, secrets) as h: start the container; h.serve(id, alive)``
    """

    def __init__(self, ipc_dir: Path, secrets: dict[str, str], *, agent: str = "") -> None:
        self.path = Path(ipc_dir) / SOCKET_NAME
        self.agent = agent
        self.folder = ipc_folder(Path(ipc_dir), agent)
        self._payload = json.dumps(secrets, ensure_ascii=False).encode("utf-8")
        self._sock: socket.socket | None = None

    def open(self) -> Path:
        """Bind and listen (replacing a stale socket); the agent user may connect.

        Bound through :meth:`crowdtui.agent_folder.AgentFolder.bind_socket`: mode 0600 and
        owner are set where the agent cannot swap the socket for a link, then it is renamed
        into the IPC folder. What stood in the way is in ``self.findings``.
        """
        self._sock = self.folder.bind_socket(SOCKET_NAME, backlog=4)
        self._sock.setblocking(True)
        return self.path

    def serve(self, container_id: str, alive: Callable[[], str | None] = lambda: None,
              timeout: float = HANDOFF_TIMEOUT) -> None:
        """Wait for the container's one connection, send the secrets, close and unlink.

        ``alive()`` is polled about twice a second: it returns None while the container
        runs, else a line saying why it stopped (the handoff then fails at once).
        Raises :class:`HandoffFailed` with a clear line when the secrets were not taken.
        """
        if self._sock is None:
            raise HandoffFailed("the secrets socket is not open; call open() first")
        deadline = time.monotonic() + timeout
        self._sock.settimeout(0.25)

        def attempt() -> bool:
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, BlockingIOError, InterruptedError):
                return False
            with conn:
                if not peer_in_container(conn, container_id):
                    return False  # someone else: they get nothing, the agent still may connect
                conn.settimeout(max(1.0, deadline - time.monotonic()))
                try:
                    conn.sendall(self._payload)
                    conn.shutdown(socket.SHUT_WR)
                except OSError as exc:
                    raise HandoffFailed(f"agent {self.agent}: handing over the secrets failed ({exc}); "
                                        "restart the agent") from None
                return True

        try:
            wait_until_taken(self.agent, attempt, alive, timeout, deadline)
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening and remove the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self.folder.unlink(SOCKET_NAME)

    @property
    def findings(self) -> list[Finding]:
        return self.folder.findings

    def __enter__(self) -> "SecretHandoff":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        self._payload = b""


def wait_until_taken(agent: str, attempt: Callable[[], bool], alive: Callable[[], str | None],
                     timeout: float, deadline: float) -> None:
    """Call ``attempt()`` (which waits up to about 0.25 s and returns True once the secrets were
    handed over) until it succeeds; :class:`HandoffFailed` when ``deadline`` passes or ``alive()``
    (polled about twice a second) says the container stopped."""
    last_check = 0.0
    while True:
        now = time.monotonic()
        if now > deadline:
            raise HandoffFailed(
                f"agent {agent}: the container did not take its secrets within {timeout:.0f} s; "
                "its image needs crowd-entry (the crowdtui agent image has it); see `crowdtui logs "
                f"{agent}`"
            )
        if now - last_check > 0.5:
            last_check = now
            why = alive()
            if why:
                raise HandoffFailed(f"agent {agent}: the container stopped before taking its secrets: {why}")
        if attempt():
            return


class RelayedHandoff:
    """The hand-off for an agent on a remote engine, through its relay (see the module's text).

    ``offer(engine, agent, payload, names)`` is the host's (``RelayHookup.offer_secrets``): it puts
    the values on offer at the hub and returns an object with ``wait(timeout) -> bool``, ``error``
    and ``withdraw()``. Same use as :class:`SecretHandoff`: ``open()``, start the container,
    ``serve(container_id, alive)``, ``close()``."""

    def __init__(self, offer: Callable, engine: str, secrets: dict[str, str], *, agent: str) -> None:
        self.agent, self.engine = agent, engine
        self._offer_fn = offer
        self._names = tuple(secrets)
        self._payload = json.dumps(secrets, ensure_ascii=False).encode("utf-8")
        self._offer = None
        self.findings: list[Finding] = []  # nothing is made on the host

    def open(self) -> None:
        self._offer = self._offer_fn(self.engine, self.agent, self._payload, self._names)
        self._payload = b""

    def serve(self, container_id: str, alive: Callable[[], str | None] = lambda: None,
              timeout: float = HANDOFF_TIMEOUT) -> None:
        if self._offer is None:
            raise HandoffFailed("the secrets are not on offer; call open() first")
        offer = self._offer

        def attempt() -> bool:
            if not offer.wait(0.25):
                return False
            if offer.error:
                raise HandoffFailed(f"agent {self.agent}: handing over the secrets through the relay of engine "
                                    f"{self.engine} failed ({offer.error}); restart the agent")
            return True

        try:
            wait_until_taken(self.agent, attempt, alive, timeout, time.monotonic() + timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Withdraw the offer (idempotent): the relay drops the socket, the hub forgets the values."""
        if self._offer is not None:
            self._offer.withdraw()
            self._offer = None
        self._payload = b""
