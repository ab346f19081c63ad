"""The hub's streamable-HTTP side, bounded: uvicorn's h11 protocol with a connection cap and
a deadline to start a request.

uvicorn's ``limit_concurrency`` answers 503 only once a request arrives, and its keep-alive
timer starts only after a first response, so connections that never send a request would
be held forever. ``bounded_h11_protocol(n, head_timeout)`` closes a connection past the
n-th at once (503) and one that starts no request within ``head_timeout`` seconds of being
idle (also a slowly sent request head).
"""

from __future__ import annotations

import asyncio


def bounded_h11_protocol(max_connections: int, head_timeout: float) -> type:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                b"Content-Length: 40\r\nConnection: close\r\n\r\n"
                                b"too many connections to the hub; retry\r\n")
                transport.close()
                return
            self._seen_cycle = None
            self._head_timer = self.loop.call_later(head_timeout, self._check_head)

        def _check_head(self) -> None:
            if self.transport.is_closing():
                return
            cycle = self.cycle
            idle = cycle is None or cycle.response_complete
            if idle and cycle is self._seen_cycle:  # no new request started within head_timeout
                self.transport.close()
                return
            self._seen_cycle = cycle
            self._head_timer = self.loop.call_later(head_timeout, self._check_head)

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_head_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

    return BoundedH11Protocol
