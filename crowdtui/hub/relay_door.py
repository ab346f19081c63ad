"""The hub's door for relays: agents on other engines reach their own doors through their engine's relay.

A relay (``docker/bin/crowd-relay``, a hardened container on a remote engine) holds one
unix socket per agent, in that agent's own volume, and carries their connections to the
hub over one TLS connection, multiplexed by stream (``crowdtui.hub.relay_wire``).

    door = RelayDoor(hub, agents_on_engine, host="0.0.0.0", port=7443)
    await door.start()            # door.address -> (host, port)
    door.refresh()                # placement changed: tell the relays now (they are also polled)
    await door.stop()

Trust, in order:
* TLS with a client certificate signed by the workspace's relay CA *and* currently issued to
  an engine (``crowdtui.hub.relay_credentials``): the certificate names the engine; nothing
  the relay sends can change which engine it is. A failed handshake or a certificate that
  was revoked or replaced is refused and recorded (``relay.refused``, rate-limited); a link
  that is up when its credential is revoked or replaced ends at the next SERVE look (about a
  second) or OPEN, whichever comes first.
* Each stream names its agent once, in its OPEN frame. The name is trusted only when
  ``agents_on_engine(engine)`` (the host's placement) says that agent runs on this relay's
  engine; otherwise the stream is refused and recorded. Stream ids only increase and DATA
  carries no name, so a stream can neither be opened twice nor switch agent.
* A trusted stream is served exactly as a connection on the agent's own unix door (the same
  session, grants, bounds and connection budget — ``Hub._serve_door``), audited with
  ``via: relay:<engine>``; an ``egress`` stream goes to the agent's egress proxy door.
* A ``secrets`` stream takes the agent's pending secrets hand-off, once
  (``crowdtui.hub.relay_secrets``): the hub writes the values and closes the stream. The door is
  in the SERVE list only while a hand-off is pending; a stream when none is (or a second one) is
  refused and recorded.

Bounded: frames (``MAX_PAYLOAD``), bytes in flight per stream (``WINDOW``), streams per link,
handshakes waiting at once, a handshake and a silent link time out. A relay that breaks the
protocol loses its link (recorded); its relay reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Union

from crowdtui.hub import relay_wire as wire
from crowdtui.hub.bounds import RefusalReporter
from crowdtui.hub.identity import DOOR_VIA
from crowdtui.hub.relay_credentials import ca_certificate, engine_for_certificate, hub_identity
from crowdtui.hub.relay_secrets import SecretOffers

log = logging.getLogger(__name__)

Placement = Callable[[str], Union[set, frozenset, Awaitable[set]]]


class _Stream:
    """One agent connection carried by a link: the hub's end of a socket pair whose other end
    is served as the agent's door."""

    def __init__(self, link: "_Link", sid: int, agent: str, door: str):
        self.link, self.sid, self.agent, self.door = link, sid, agent, door
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.send_credit = wire.WINDOW  # bytes we may still send to the relay
        self.credit_event = asyncio.Event()
        self.in_flight = 0  # bytes the relay sent that we have not credited back
        self.pending = 0  # written locally, not yet drained and credited
        self.crediting: asyncio.Task | None = None
        self.sent_close = self.got_close = False
        self.tasks: set[asyncio.Task] = set()
        self.on_end = None  # called with True when the door's side ended and CLOSE reached the link

    def incoming(self, data: bytes) -> None:
        if self.got_close:
            raise wire.ProtocolError(f"DATA on stream {self.sid} after its CLOSE")
        if self.in_flight + len(data) > wire.WINDOW:
            raise wire.ProtocolError(f"stream {self.sid} sent past its window of {wire.WINDOW} bytes")
        self.in_flight += len(data)
        if self.writer is None or self.writer.is_closing():
            return  # the door side is gone; its CLOSE is on the way
        self.writer.write(data)
        self.pending += len(data)
        if self.crediting is None:
            self.crediting = self.link.spawn(self._credit_back())

    async def _credit_back(self) -> None:
        try:
            while self.pending:
                # no timeout: a door that is not reading (its call places are taken) holds the
                # agent back by withholding credit, as a full socket buffer does on a local door
                await self.writer.drain()
                n, self.pending = self.pending, 0
                self.in_flight -= n
                await self.link.send(wire.credit(self.sid, n))
        except (OSError, ConnectionError):
            pass  # the link is gone: its streams end with it
        finally:
            self.crediting = None

    def add_credit(self, n: int) -> None:
        self.send_credit += n
        if self.send_credit > wire.WINDOW:
            raise wire.ProtocolError(f"stream {self.sid} was credited past its window")
        self.credit_event.set()

    def remote_closed(self) -> None:
        self.got_close = True
        if self.writer is not None and not self.writer.is_closing():
            try:
                self.writer.write_eof()  # after what is buffered: the door sees the agent's EOF
            except OSError:
                self.writer.transport.abort()

    async def pump_out(self) -> None:
        """Bytes from the door to the relay, within the relay's credit. When the door's side ends
        (it always closes whole) the stream is over: CLOSE, and it is forgotten at once, whatever
        the agent's side still does (its late frames are dropped), so an agent that never closes
        its end holds nothing here."""
        ended = False
        try:
            while True:
                while self.send_credit <= 0:
                    self.credit_event.clear()
                    await self.credit_event.wait()
                data = await self.reader.read(min(wire.MAX_PAYLOAD, self.send_credit))
                if not data:
                    ended = True
                    break
                self.send_credit -= len(data)
                await self.link.send(wire.frame(wire.DATA, self.sid, data))
        except (OSError, ConnectionError):
            pass
        finally:
            self.link.forget(self)
            closed = False
            try:
                if not self.sent_close:
                    self.sent_close = True
                    try:
                        await self.link.send(wire.frame(wire.CLOSE, self.sid))
                        closed = True
                    except (OSError, ConnectionError):
                        pass
            finally:
                if self.on_end is not None:  # a secrets stream: were the values all sent, then CLOSE?
                    self.on_end(ended and closed)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()


class _Link:
    """One authenticated relay connection (one engine)."""

    def __init__(self, door: "RelayDoor", engine: str, reader, writer, peer: str, der: bytes | None = None):
        self.door, self.engine, self.reader, self.writer, self.peer = door, engine, reader, writer, peer
        self.der = der  # the certificate it presented: still the engine's at every SERVE and OPEN
        self.streams: dict[int, _Stream] = {}
        self.last_id = 0
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task] = set()
        self.served: dict[str, list[str]] | None = None
        self.wake = asyncio.Event()

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def send(self, data: bytes) -> None:
        async with self.lock:
            if self.writer.is_closing():
                raise ConnectionResetError("the relay link is closed")
            self.writer.write(data)
            try:
                await asyncio.wait_for(self.writer.drain(), self.door.slow_timeout)
            except (asyncio.TimeoutError, TimeoutError):
                self.writer.transport.abort()
                raise ConnectionResetError("the relay did not read within the slow-reader timeout") from None

    def forget(self, stream: _Stream) -> None:
        if self.streams.get(stream.sid) is stream:
            del self.streams[stream.sid]
        if stream.writer is not None:
            stream.writer.transport.abort()

    async def serve_list(self) -> dict[str, list[str]]:
        """The agents this relay should hold sockets for: placed on its engine, with an open door
        (or a secrets hand-off pending)."""
        placed = await self.door.placed(self.engine)
        hub, served = self.door.hub, {}
        for a in sorted(placed):
            doors = ["mcp"] + (["egress"] if a in hub.egress.doors else []) if a in hub.doors else []
            if self.door.secrets.wanted(a, self.engine):
                doors.append("secrets")
            if doors:
                served[a] = doors
        return served

    async def check_credential(self) -> None:
        """The engine's credential revoked or replaced since this link began (``crowdtui engine rm``,
        maybe from another process): the link ends now, not at its next connection."""
        if self.der is None or engine_for_certificate(self.door.hub.workspace, self.der) == self.engine:
            return
        self.door.refusals.refused("", f"relay:{self.engine}", "revoked", {"engine": self.engine, "peer": self.peer})
        try:
            await self.send(wire.control(wire.REFUSE, reason="this relay's credential was revoked or replaced"))
        except (OSError, ConnectionError):
            pass
        self.writer.transport.abort()
        raise ConnectionResetError(f"the credential of engine {self.engine} was revoked")

    async def announce(self) -> None:
        await self.check_credential()
        served = await self.serve_list()
        if served != self.served:
            self.served = served
            await self.send(wire.control(wire.SERVE, agents=served))
            for stream in list(self.streams.values()):  # moved away or door closed: its streams end
                if stream.agent not in served or stream.door not in served[stream.agent]:
                    stream.abort()

    async def watch(self) -> None:
        while True:
            try:
                await self.announce()
            except (OSError, ConnectionError):
                return
            except Exception:
                log.exception("telling relay %s what to serve failed", self.engine)
            try:
                await asyncio.wait_for(self.wake.wait(), self.door.poll)
            except (asyncio.TimeoutError, TimeoutError):
                pass
            self.wake.clear()

    async def run(self) -> None:
        watcher = self.spawn(self.watch())
        try:
            while True:
                kind, sid, payload = await asyncio.wait_for(wire.read_frame(self.reader), self.door.link_timeout)
                if kind == wire.PING:
                    await self.send(wire.frame(wire.PONG))
                elif kind == wire.OPEN:
                    await self.open(sid, payload)
                elif kind in (wire.DATA, wire.CREDIT, wire.CLOSE):
                    stream = self.streams.get(sid)
                    if stream is None:
                        if 0 < sid <= self.last_id:
                            continue  # a stream we refused or ended: late frames are dropped
                        raise wire.ProtocolError(f"{wire.NAMES[kind]} on stream {sid}, which was never opened")
                    if kind == wire.DATA:
                        stream.incoming(payload)
                    elif kind == wire.CREDIT:
                        stream.add_credit(wire.parse_credit(payload))
                    else:
                        stream.remote_closed()
                else:
                    raise wire.ProtocolError(f"a relay may not send {wire.NAMES[kind]} here")
        finally:
            watcher.cancel()
            for stream in list(self.streams.values()):
                stream.abort()
            self.streams.clear()
            for task in list(self.tasks):
                task.cancel()

    async def open(self, sid: int, payload: bytes) -> None:
        if sid == 0 or sid % 2 == 0 or sid <= self.last_id:
            raise wire.ProtocolError(
                f"OPEN of stream {sid} after stream {self.last_id}: stream ids are odd and only increase "
                f"(a stream is opened once and cannot switch agent)")
        self.last_id = sid
        await self.check_credential()
        fields = wire.parse_control(payload)
        agent, door_kind = fields.get("agent"), fields.get("door", "mcp")
        reason = None
        if not isinstance(agent, str) or door_kind not in wire.DOORS:
            reason, why = "bad_open", "an OPEN names an agent (a string) and a door (mcp or egress)"
        elif len(self.streams) >= self.door.max_streams:
            reason, why = "streams", f"this relay already carries {self.door.max_streams} streams"
        elif agent not in await self.door.placed(self.engine):
            reason, why = "not_on_engine", f"agent {agent!r} is not placed on engine {self.engine!r}"
        elif door_kind == "secrets":
            offer, payload, reason = self.door.secrets.take(agent, self.engine)
            target = (offer, payload)
            why = (f"agent {agent}'s secrets were already taken" if reason == "taken"
                   else f"no secrets hand-off is pending for agent {agent}")
            reason = reason or None
        else:
            target = (self.door.hub.doors if door_kind == "mcp" else self.door.hub.egress.doors).get(agent)
            if target is None:
                reason, why = "no_door", f"agent {agent}'s {door_kind} door is not open"
        if reason is not None:
            shown = agent[:80] if isinstance(agent, str) else ""
            self.door.refusals.refused(shown, f"relay:{self.engine}", reason,
                                       {"engine": self.engine, "agent": shown, "door": str(door_kind)[:20],
                                        "stream": sid})
            await self.send(wire.control(wire.REFUSED, sid, reason=why))
            return
        stream = _Stream(self, sid, agent, door_kind)
        if door_kind == "secrets":
            stream.on_end = target[0].finish
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stream.reader, stream.writer = await asyncio.open_unix_connection(sock=ours, limit=wire.MAX_PAYLOAD)
        self.streams[sid] = stream
        stream.tasks.add(self.spawn(self._serve(stream, target, theirs)))
        stream.tasks.add(self.spawn(stream.pump_out()))

    async def _serve(self, stream: _Stream, target, sock: socket.socket) -> None:
        DOOR_VIA.set(f"relay:{self.engine}")
        hub = self.door.hub
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=hub.limits.read_chunk)
        if stream.door == "mcp":
            await hub._serve_door(target, reader, writer)
        elif stream.door == "secrets":  # the values, once; then the stream ends
            offer, payload = target
            del target
            writer.write(payload)
            payload = b""
            writer.close()
            await self.door._event("relay.secrets_taken", offer.agent,
                                   {"engine": self.engine, "agent": offer.agent, "names": list(offer.names),
                                    "stream": stream.sid})
        else:
            await hub.egress._serve_door(target, reader, writer)
        if not writer.is_closing():
            writer.close()


class RelayDoor:
    """Accepts relay links for a started ``crowdtui.hub.hub.Hub``; see the module's text."""

    def __init__(self, hub, agents_on_engine: Placement, *, host: str = "127.0.0.1", port: int = 0,
                 handshake_timeout: float = 10.0, link_timeout: float = 45.0, poll: float = 1.0,
                 max_streams: int = 1024, max_handshakes: int = 32):
        self.hub = hub
        self.agents_on_engine = agents_on_engine
        self.host, self.port = host, port
        self.handshake_timeout, self.link_timeout, self.poll = handshake_timeout, link_timeout, poll
        self.max_streams, self.max_handshakes = max_streams, max_handshakes
        self.slow_timeout = hub.limits.slow_reader_timeout
        self.refusals = RefusalReporter(self._record, hub.limits.refusal_event_every, kind="relay.refused")
        self.links: dict[str, _Link] = {}
        self.address: tuple[str, int] | None = None
        self._server: asyncio.AbstractServer | None = None
        self._context: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task] = set()
        self._handshakes = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the hub's (set at start; offers come from threads)
        self.secrets = SecretOffers(self._refresh_soon)  # pending secrets hand-offs (relay_secrets)

    def tls_context(self) -> ssl.SSLContext:
        cert, key = hub_identity(self.hub.workspace)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(ca_certificate(self.hub.workspace)))
        return ctx

    async def start(self) -> tuple[str, int]:
        if self._server is not None:
            return self.address
        self._context = self.tls_context()
        self.loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.host, self.port, limit=wire.MAX_PAYLOAD)
        self.address = self._server.sockets[0].getsockname()[:2]
        await self._event("relay.listening", "", {"address": f"{self.address[0]}:{self.address[1]}"})
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        self.links.clear()

    def refresh(self) -> None:
        """Placement or doors changed: every link re-sends its SERVE list now (not at the next poll)."""
        for link in self.links.values():
            link.wake.set()

    def offer_secrets(self, agent: str, engine: str, payload: bytes, names=()):
        """Hold ``agent``'s secrets (``payload``: the JSON crowd-entry reads) for one stream from the
        relay of ``engine``; returns the ``SecretsOffer`` (``wait``, ``error``, ``withdraw``).
        Thread-safe: the runtime calls it from the thread that starts the container."""
        return self.secrets.offer(agent, engine, payload, names)

    def _refresh_soon(self) -> None:
        """``refresh`` from any thread (the runtime's offers and withdrawals)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self.refresh()
        else:
            loop.call_soon_threadsafe(self.refresh)

    async def placed(self, engine: str) -> set[str]:
        """The agents placed on ``engine``; none when the host's placement cannot say (fail closed)."""
        try:
            value = self.agents_on_engine(engine)
            if inspect.isawaitable(value):
                value = await value
            return {str(a) for a in (value or ())}
        except Exception:
            log.exception("the placement of engine %s could not be read; trusting its relay for no agent", engine)
            return set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            link = await self._handshake(reader, writer, peer)
            if link is None:
                return
            try:
                await link.run()
            except wire.ProtocolError as exc:
                self.refusals.refused("", f"relay:{link.engine}", "protocol", {"engine": link.engine, "error": str(exc)[:300]})
                try:
                    await link.send(wire.control(wire.REFUSE, reason=f"protocol error: {exc}"))
                except (OSError, ConnectionError):
                    pass
            except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, TimeoutError):
                pass
            finally:
                if self.links.get(link.engine) is link:
                    del self.links[link.engine]
                await self._event("relay.disconnected", "", {"engine": link.engine, "peer": peer})
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("relay link from %s failed", peer)
        finally:
            writer.transport.abort()
            self._tasks.discard(task)

    async def _handshake(self, reader, writer, peer: str) -> _Link | None:
        if self._handshakes >= self.max_handshakes:
            self.refusals.refused("", "relay", "handshakes", {"peer": peer, "limit": self.max_handshakes})
            return None
        self._handshakes += 1
        try:
            try:
                await writer.start_tls(self._context, ssl_handshake_timeout=self.handshake_timeout)
            except (ssl.SSLError, OSError, asyncio.TimeoutError, TimeoutError, ConnectionError) as exc:
                self.refusals.refused("", "relay", "tls", {"peer": peer, "error": " ".join(str(exc).split())[:200]})
                return None
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            engine = engine_for_certificate(self.hub.workspace, der)
            if engine is None:
                self.refusals.refused("", "relay", "credential", {"peer": peer})
                await self._refuse(writer, "this relay's certificate is not the one issued to any engine "
                                           "(revoked or replaced); make the relay again with its engine's credential")
                return None
            try:
                kind, _, payload = await asyncio.wait_for(wire.read_frame(reader), self.handshake_timeout)
                hello = wire.parse_control(payload) if kind == wire.HELLO else None
            except (wire.ProtocolError, asyncio.IncompleteReadError, asyncio.TimeoutError, TimeoutError, OSError):
                hello = None
            if hello is None or hello.get("engine") != engine:
                self.refusals.refused("", f"relay:{engine}", "hello", {"engine": engine, "peer": peer})
                await self._refuse(writer, f"a relay's first frame is HELLO naming its engine ({engine})")
                return None
        finally:
            self._handshakes -= 1
        link = _Link(self, engine, reader, writer, peer, der)
        old = self.links.get(engine)
        self.links[engine] = link
        if old is not None:  # a relay that reconnects before its old link timed out: the new one wins
            old.writer.transport.abort()
        await link.send(wire.control(wire.WELCOME, engine=engine))
        await self._event("relay.connected", "", {"engine": engine, "peer": peer, "replaced": old is not None})
        return link

    async def _refuse(self, writer, reason: str) -> None:
        try:
            writer.write(wire.control(wire.REFUSE, reason=reason))
            await asyncio.wait_for(writer.drain(), 1.0)
        except (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError):
            pass

    async def _record(self, kind: str, agent: str, detail: dict) -> None:
        await self._event(kind, agent, detail)

    async def _event(self, kind: str, subject: str, detail: dict) -> None:
        try:
            await self.hub.store.append_event("hub", kind, subject, detail)
        except Exception:
            log.exception("could not record %s", kind)
