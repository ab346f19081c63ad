"""Egress: an HTTP proxy per agent, on a unix socket in its IPC folder, allowing only its list.

An agent with ``network: allowlist`` runs with no network of its own. Its container's
``crowd-entry`` forwards 127.0.0.1:3128 to ``/run/crowd/egress.sock`` (the host's
``.crowd/ipc/<agent>/egress.sock``) and its environment points HTTP(S)_PROXY there. Which
socket a connection arrives on is the agent's identity, as for the hub's MCP doors. An agent
on a remote engine reaches the same door through its engine's relay (an ``egress`` stream,
``crowdtui.hub.relay_door``): the upstream connections are still made here, on the host.

The proxy speaks ``CONNECT host:port`` (tunnels, e.g. HTTPS) and plain HTTP with an
absolute URL (one request per connection, ``Connection: close``). It resolves names
itself, checks host and port against the agent's ``egress`` entries (``host-glob:port``,
port may be ``*``; globs are case-insensitive and match the name as the agent asked for
it), connects allowed destinations and refuses everything else with ``403`` and a one-line
reason. A name matched only by a wildcard may not resolve to an internal address (loopback,
private, link-local): reaching those takes an entry naming the host exactly, so a hostile
DNS answer cannot turn ``*.example.com`` towards the host's own services. Every decision is an event: ``egress.allowed`` / ``egress.denied`` (and
``egress.failed`` when an allowed destination cannot be reached) with agent, host, port
and method — never the path or query, which may carry credentials.

Bounded (numbers in ``crowdtui.hub.limits``): request heads up to ``max_header`` bytes,
``header_timeout`` to send them, ``connect_timeout`` to reach the destination,
``idle_timeout`` without bytes in either direction, ``slow_reader_timeout`` for a side to
take what was written to it, at most ``max_connections`` at once per agent and, shared with
the hub's MCP doors, a budget of descriptors across all agents; refusals are ``hub.refused``
events, at most one per agent and window.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from crowdtui.errors import CrowdError
from crowdtui.hub.identity import DOOR_VIA

log = logging.getLogger(__name__)

SOCKET_NAME = "egress.sock"
MAX_HEADER = 16 * 1024
HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive", "te", "trailer",
               "upgrade", "proxy-authenticate"}


class EgressError(CrowdError):
    """A proxy door could not be opened."""


@dataclass(frozen=True)
class Rule:
    host: str  # lower-case glob
    port: int | None  # None: any port

    def allows(self, host: str, port: int) -> bool:
        return (self.port is None or self.port == port) and fnmatch.fnmatchcase(host, self.host)


def parse_rules(entries) -> tuple[Rule, ...]:
    """``["api.github.com:443", "*.example.org:*"]`` -> rules (EgressError on a malformed entry)."""
    rules = []
    for entry in entries:
        host, sep, port = str(entry).strip().rpartition(":")
        if not sep or not host or not (port == "*" or (port.isdigit() and 1 <= int(port) <= 65535)):
            raise EgressError(f"egress entry {entry!r} is not 'host:port' (port may be *); fix the agent's AGENT.md")
        rules.append(Rule(host.lower().strip("[]").rstrip("."), None if port == "*" else int(port)))
    return tuple(rules)


def normalize_host(host: str) -> str:
    return host.strip().lower().strip("[]").rstrip(".")


def allowed(rules: tuple[Rule, ...], host: str, port: int) -> bool:
    host = normalize_host(host)
    return any(rule.allows(host, port) for rule in rules)


def named_exactly(rules: tuple[Rule, ...], host: str, port: int) -> bool:
    """True when a rule names this host literally (no wildcard), e.g. ``127.0.0.1:8080``."""
    host = normalize_host(host)
    return any(rule.host == host and not any(c in rule.host for c in "*?[") and rule.allows(host, port)
               for rule in rules)


def internal(address: str) -> bool:
    """Loopback, private, link-local and other non-public addresses (the host's own services live there)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if getattr(ip, "ipv4_mapped", None):
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class _Refused(Exception):
    def __init__(self, status: int, reason: str, line: str):
        super().__init__(line)
        self.status, self.reason, self.line = status, reason, line


@dataclass
class _Door:
    agent: str
    path: Path
    rules: tuple[Rule, ...]
    where: str  # agents/<path>/AGENT.md, for messages
    server: asyncio.AbstractServer | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    active: int = 0


class EgressProxy:
    """Per-agent egress doors: ``await proxy.open_door(agent_def)``, ``close_door(name)``, ``stop()``."""

    def __init__(self, workspace, store, *, connect_timeout: float | None = None, header_timeout: float | None = None,
                 idle_timeout: float | None = None, max_header: int | None = None,
                 max_connections: int | None = None, limits=None, budget=None, refusals=None):
        from crowdtui.hub.bounds import ConnectionBudget, RefusalReporter
        from crowdtui.hub.limits import DEFAULT

        limits = limits or DEFAULT
        self.workspace = workspace
        self.store = store
        self.connect_timeout = limits.egress_connect_timeout if connect_timeout is None else connect_timeout
        self.header_timeout = limits.egress_header_timeout if header_timeout is None else header_timeout
        self.idle_timeout = limits.egress_idle_timeout if idle_timeout is None else idle_timeout
        self.max_header = limits.egress_max_header if max_header is None else max_header
        self.max_connections = limits.egress_connections_per_door if max_connections is None else max_connections
        self.slow_reader_timeout = limits.slow_reader_timeout  # a write not drained in this long ends the tunnel
        # shared with the hub's MCP doors when the hub runs us: one budget of descriptors
        self.budget = budget or ConnectionBudget(limits.connection_budget())
        self.refusals = refusals or RefusalReporter(self._refusal_event, limits.refusal_event_every)
        self.doors: dict[str, _Door] = {}

    def socket_path(self, agent: str) -> Path:
        return self.workspace.ipc_dir(agent) / SOCKET_NAME

    async def open_door(self, agent_def) -> Path | None:
        """Serve the agent's proxy socket; returns its host path, or None when the agent's
        network is not ``allowlist`` (it needs no proxy). Re-opening replaces the rules."""
        from crowdtui.agent_folder import finding_event, ipc_folder
        from crowdtui.runtime.containers import check_name

        name = check_name(agent_def.name)
        if agent_def.network != "allowlist":
            await self.close_door(name)
            return None
        rules = parse_rules(agent_def.egress)
        door = self.doors.get(name)
        if door is not None:
            door.rules = rules
            return door.path
        path = self.socket_path(name)
        ipc = ipc_folder(self.workspace, name)
        try:
            sock = ipc.bind_socket(SOCKET_NAME)
        finally:
            for finding in ipc.findings:  # what the agent left in the way: replaced, recorded
                kind, subject, detail = finding_event(finding)
                try:
                    await self.store.append_event("hub", kind, subject, detail)
                except Exception:
                    log.exception("recording %s for %s failed", kind, name)
        door = _Door(agent=name, path=path, rules=rules,
                     where=f"agents/{getattr(agent_def, 'rel_path', name)}/AGENT.md")

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve_door(door, reader, writer)

        door.server = await asyncio.start_unix_server(on_connect, sock=sock, limit=self.max_header)
        self.doors[name] = door
        await self._event(name, "egress.door_opened", {"agent": name, "rules": list(agent_def.egress)})
        return path

    async def close_door(self, name: str) -> None:
        """Stop serving the agent's proxy and end its connections (idempotent)."""
        door = self.doors.pop(name, None)
        if door is None:
            return
        if door.server is not None:
            door.server.close()
        for task in list(door.tasks):
            task.cancel()
        if door.tasks:
            await asyncio.wait(list(door.tasks), timeout=5)
        from crowdtui.agent_folder import ipc_folder

        ipc_folder(self.workspace, name).unlink(door.path.name)
        await self._event(name, "egress.door_closed", {"agent": name})

    async def stop(self) -> None:
        for name in list(self.doors):
            await self.close_door(name)

    async def __aenter__(self) -> "EgressProxy":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- one connection --------------------------------------------------------------

    async def _serve_door(self, door: _Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection on an agent's proxy door: admitted within the limits (a tunnel holds
        two descriptors), or refused with 503 and a rate-limited ``hub.refused`` event."""
        key = f"egress:{door.agent}"
        reason = self.budget.admit(key, self.max_connections, weight=2)
        if reason is not None:
            self.refusals.refused(door.agent, "egress", "connections",
                                  {"limit": self.max_connections, "total": self.budget.total})
            await _respond(writer, 503, "Service Unavailable",
                           f"proxy connection refused: {reason.replace('this door', f'agent {door.agent}')}; "
                           f"retry later", self.slow_reader_timeout)
            await _close(writer, self.slow_reader_timeout)
            return
        task = asyncio.current_task()
        door.tasks.add(task)
        door.active += 1
        try:
            await self._serve(door, reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("egress connection of %s failed", door.agent)
        finally:
            door.active -= 1
            door.tasks.discard(task)
            self.budget.release(key, weight=2)
            await _close(writer, self.slow_reader_timeout)

    async def _serve(self, door: _Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self.slow_reader_timeout
        try:
            head = await self._read_head(reader)
            if head is None:
                return  # closed before sending anything
            method, host, port, forward = _parse_head(head)
        except _Refused as exc:
            await _respond(writer, exc.status, exc.reason, exc.line, timeout)
            return
        detail = {"agent": door.agent, "host": host, "port": port, "method": method}
        if DOOR_VIA.get():  # carried by an engine's relay (crowdtui.hub.relay_door)
            detail["via"] = DOOR_VIA.get()
        if not allowed(door.rules, host, port):
            await self._event(door.agent, "egress.denied", {**detail, "reason": "not in the agent's egress list"})
            await _respond(writer, 403, "Forbidden",
                           f"egress to {host}:{port} is not allowed for agent {door.agent}; "
                           f"add '{host}:{port}' to egress in {door.where}", timeout)
            return
        try:
            addresses = await self._resolve(host, port, internal_ok=named_exactly(door.rules, host, port))
        except _Refused as exc:
            kind = "egress.denied" if exc.status == 403 else "egress.failed"
            await self._event(door.agent, kind, {**detail, "reason": exc.line})
            await _respond(writer, exc.status, exc.reason, exc.line, timeout)
            return
        await self._event(door.agent, "egress.allowed", detail)
        try:
            up_reader, up_writer = await self._connect(host, port, addresses)
        except _Refused as exc:
            await self._event(door.agent, "egress.failed", {**detail, "error": exc.line})
            await _respond(writer, exc.status, exc.reason, exc.line, timeout)
            return
        try:
            if forward is None:  # CONNECT: the tunnel is open
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.wait_for(writer.drain(), timeout)
            else:
                up_writer.write(forward)
                await asyncio.wait_for(up_writer.drain(), timeout)
            await self._pipe(reader, writer, up_reader, up_writer)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        finally:
            up_writer.transport.abort()

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.header_timeout)
        except asyncio.IncompleteReadError as exc:
            if not exc.partial.strip():
                return None
            raise _Refused(400, "Bad Request", "the request head ended early; send a complete HTTP request") from None
        except asyncio.LimitOverrunError:
            raise _Refused(431, "Request Header Fields Too Large",
                           f"the request head is over {self.max_header} bytes; send smaller headers") from None
        except (asyncio.TimeoutError, TimeoutError):
            raise _Refused(408, "Request Timeout",
                           f"no complete request head within {self.header_timeout:.0f} s") from None
        except ValueError:  # limit exceeded while buffering
            raise _Refused(431, "Request Header Fields Too Large",
                           f"the request head is over {self.max_header} bytes; send smaller headers") from None

    async def _resolve(self, host: str, port: int, *, internal_ok: bool) -> list[tuple[int, tuple]]:
        """The addresses to try. A name matched only by a wildcard may not lead to an internal
        address (the host's own services, the local network): only a rule naming that host
        literally allows that, so a hostile DNS answer cannot turn '*.example.com' inward."""
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), self.connect_timeout)
        except (OSError, asyncio.TimeoutError, TimeoutError, UnicodeError) as exc:
            raise _Refused(502, "Bad Gateway", f"cannot resolve {host}: {exc}") from None
        addresses = [(family, addr) for family, _t, _p, _c, addr in infos]
        if not internal_ok:
            inward = [addr[0] for _f, addr in addresses if internal(addr[0])]
            if inward:
                raise _Refused(403, "Forbidden",
                               f"{host} resolves to the internal address {inward[0]}; only an egress entry naming "
                               f"'{host}:{port}' exactly may reach internal addresses")
        return addresses

    async def _connect(self, host: str, port: int, addresses: list[tuple[int, tuple]]):
        last: Exception | None = None
        for family, addr in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(addr[0], addr[1], family=family), self.connect_timeout)
            except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
                last = exc
        raise _Refused(502, "Bad Gateway", f"cannot connect to {host}:{port}: {last or 'no address'}")

    async def _pipe(self, c_reader, c_writer, u_reader, u_writer) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    chunk = await asyncio.wait_for(src.read(65536), self.idle_timeout)
                    if not chunk:
                        break
                    dst.write(chunk)
                    await asyncio.wait_for(dst.drain(), self.slow_reader_timeout)  # a side that does not read
            except (OSError, asyncio.TimeoutError, TimeoutError):
                pass
            finally:
                try:
                    if dst.can_write_eof():
                        dst.write_eof()
                except OSError:
                    pass

        up = asyncio.create_task(copy(c_reader, u_writer))
        down = asyncio.create_task(copy(u_reader, c_writer))
        try:
            await asyncio.wait({down})  # bytes the client sent past the head are still in its reader
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)

    async def _refusal_event(self, kind: str, agent: str, detail: dict) -> None:
        await self._event(agent, kind, {"agent": agent, **detail})

    async def _event(self, agent: str, kind: str, detail: dict) -> None:
        try:
            await self.store.append_event(agent, kind, agent, detail)
        except Exception:  # recording must never break the agent's connection handling
            log.exception("recording %s for %s failed", kind, agent)


def _parse_head(head: bytes) -> tuple[str, str, int, bytes | None]:
    """(method, host, port, bytes to send upstream or None for CONNECT)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise _Refused(400, "Bad Request", "the request head is not text") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha() or not parts[0].isupper():
        raise _Refused(400, "Bad Request", "not an HTTP/1.x proxy request line; use CONNECT host:port or an http:// URL")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(ord(ch) < 33 or ch in "()<>@,;\\\"/[]?={}" for ch in name):
            raise _Refused(400, "Bad Request", "a malformed header line; send 'Name: value' headers")
        if any(ord(ch) < 32 and ch != "\t" for ch in value):
            raise _Refused(400, "Bad Request", "a header value holds control characters")
        headers.append((name, value.strip()))
    if method == "CONNECT":
        host, port = _host_port(target, None)
        return method, host, port, None
    if not target.lower().startswith("http://"):
        raise _Refused(400, "Bad Request",
                       "plain requests need an absolute http:// URL; use CONNECT for https")
    try:
        url = urlsplit(target)
        host, port = url.hostname, url.port or 80
    except ValueError:
        raise _Refused(400, "Bad Request", "the URL's host or port is malformed") from None
    if not host or url.username or url.password:
        raise _Refused(400, "Bad Request", "the URL needs a host (and no user:password@)")
    host, port = _host_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", 80)
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    out = [f"{method} {path} {version}"]
    has_host = False
    for name, value in headers:
        low = name.lower()
        if low in HOP_HEADERS:
            continue
        has_host = has_host or low == "host"
        out.append(f"{name}: {value}")
    if not has_host:
        out.insert(1, f"Host: {url.netloc.rpartition('@')[2]}")
    out.append("Connection: close")
    return method, host, port, ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


def _host_port(target: str, default: int | None) -> tuple[str, int]:
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = target.rpartition(":") if ":" in target else (target, "", "")
    host = normalize_host(host)
    if not port_text and default is not None:
        port_text = str(default)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _Refused(400, "Bad Request", f"{target[:80]!r} has no valid port; use host:port")
    if not host or len(host) > 253 or any(ord(ch) <= 32 or ord(ch) > 126 or ch in "/\\@" for ch in host):
        raise _Refused(400, "Bad Request", f"{target[:80]!r} is not a valid host")
    return host, int(port_text)


async def _close(writer: asyncio.StreamWriter, timeout: float) -> None:
    """Close after what is buffered is sent; a peer that does not take it within ``timeout`` is cut off."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, asyncio.TimeoutError, TimeoutError):
        writer.transport.abort()


async def _respond(writer: asyncio.StreamWriter, status: int, reason: str, line: str, timeout: float = 10.0) -> None:
    body = (line.replace("\r", " ").replace("\n", " ") + "\n").encode("utf-8", "replace")
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Crowd-Egress: {status}\r\n\r\n")
    try:
        writer.write(head.encode("latin-1") + body)
        await asyncio.wait_for(writer.drain(), timeout)
    except (OSError, asyncio.TimeoutError, TimeoutError):
        pass
