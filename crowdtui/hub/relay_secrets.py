"""Secrets hand-offs through an engine's relay: the hub's half of the one-shot hand-off for agents
on remote engines (the local one is ``crowdtui.runtime.secrets_handoff.SecretHandoff``).

An agent on a remote engine cannot reach a socket on the host. Instead, while the runtime
starts it, the hub holds an *offer* for that agent on that engine:

1. ``offer = relay_door.offer_secrets(agent, engine, payload, names)`` (thread-safe: the runtime
   calls it from the thread that starts the container, through ``RelayHookup``); from now on
   the engine's SERVE list names the ``secrets`` door for the agent, and the relay holds
   ``secrets.sock`` in the agent's own volume (its ``/run/crowd``);
2. ``crowd-entry`` in the container connects there as it does locally; the relay opens a
   stream ``{agent, door: "secrets"}``; the hub takes the offer (once: the stream must come
   from the relay of the engine the agent is placed on *and* the offer names), writes the
   values and closes the stream; ``relay.secrets_taken`` is recorded (names, never values);
3. ``offer.wait`` returns in the runtime once the values were handed to the relay (or the
   link broke: ``offer.error``); ``offer.withdraw()`` forgets the offer and its values, and
   SERVE drops the door, so the relay removes the socket.

A second stream for the same offer is refused (``relay.refused``, reason ``taken``), as is a
stream when no offer is pending (``no_handoff``). Values live in memory only, in the offer,
until it is withdrawn; they are never logged nor recorded.
"""

from __future__ import annotations

import threading

PENDING, TAKEN, DONE, FAILED = "pending", "taken", "done", "failed"


class SecretsOffer:
    """One pending hand-off (see the module's text). ``wait``/``withdraw`` are for the runtime's
    thread; ``take``/``finish`` run on the hub's loop."""

    def __init__(self, offers: "SecretOffers", agent: str, engine: str, payload: bytes, names: tuple[str, ...]):
        self._offers = offers
        self.agent, self.engine, self.names = agent, engine, tuple(names)
        self._payload = bytes(payload)
        self.state = PENDING
        self.error: str | None = None
        self._settled = threading.Event()

    def __repr__(self) -> str:  # never the values
        return f"<SecretsOffer {self.agent} on {self.engine}: {self.state}>"

    def wait(self, timeout: float) -> bool:
        """True once the values were handed to the relay, or the hand-over failed (``error``)."""
        return self._settled.wait(timeout)

    def withdraw(self) -> None:
        """Forget the offer and its values (idempotent); the relay is told to drop the socket."""
        self._offers.remove(self)

    def finish(self, ok: bool, error: str = "") -> None:
        """The stream that took the offer ended: the values reached the relay, or not."""
        self.state = DONE if ok else FAILED
        self.error = None if ok else (error or "the relay link ended before the values were sent")
        self._payload = b""
        self._settled.set()
        self._offers.changed()


class SecretOffers:
    """The hub's pending hand-offs, one per agent (``RelayDoor.secrets``). ``changed`` is called
    (from any thread) when the SERVE lists must be sent again."""

    def __init__(self, changed):
        self._lock = threading.Lock()
        self._offers: dict[str, SecretsOffer] = {}
        self._changed = changed

    def offer(self, agent: str, engine: str, payload: bytes, names=()) -> SecretsOffer:
        offer = SecretsOffer(self, agent, engine, payload, tuple(names))
        with self._lock:
            old = self._offers.get(agent)
            self._offers[agent] = offer  # a new start replaces an offer left by an earlier one
        if old is not None and not old._settled.is_set():  # its start is waiting: it fails at once
            old._payload, old.error = b"", "replaced by a newer start of the agent"
            old._settled.set()
        self.changed()
        return offer

    def remove(self, offer: SecretsOffer) -> None:
        with self._lock:
            if self._offers.get(offer.agent) is offer:
                del self._offers[offer.agent]
        offer._payload = b""
        if not offer._settled.is_set():
            offer.error = offer.error or "withdrawn"
            offer._settled.set()
        self.changed()

    def changed(self) -> None:
        self._changed()

    def wanted(self, agent: str, engine: str) -> bool:
        """Whether the relay of ``engine`` should hold ``agent``'s secrets socket: an offer is
        pending there, or its stream is still being answered."""
        offer = self._offers.get(agent)
        return offer is not None and offer.engine == engine and offer.state in (PENDING, TAKEN)

    def take(self, agent: str, engine: str) -> tuple[SecretsOffer | None, bytes, str]:
        """``(offer, payload, "")`` for the one stream that takes the pending offer; else
        ``(None, b"", reason)``: ``no_handoff`` or ``taken``."""
        with self._lock:
            offer = self._offers.get(agent)
            if offer is None or offer.engine != engine:
                return None, b"", "no_handoff"
            if offer.state != PENDING:
                return None, b"", "taken"
            offer.state = TAKEN
            payload, offer._payload = offer._payload, b""
        return offer, payload, ""
