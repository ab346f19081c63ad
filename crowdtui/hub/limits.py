"""The hub's resource limits, in one place: connections, timeouts, request and answer sizes.

One hostile agent (a shell in its container, raw JSON-RPC on its socket) must not be able
to exhaust the hub's memory or file descriptors, nor slow other agents' calls. Every door
(MCP unix socket, egress proxy socket, streamable HTTP) enforces these; ``Hub(limits=...)``
takes another set (tests use short timeouts). The README's "Limits" section lists them.

Why these numbers:
  * ``max_request`` is one JSON-RPC line. The largest legitimate request is a check-in of
    a 1 MiB document (``qms.MAX_DOCUMENT_BYTES``) plus JSON quoting, so 1 MiB + 256 KiB;
    smaller would refuse documents the store accepts. An agent's unfinished lines are
    bounded by ``connections_per_door * max_request`` (20 MiB), not by this alone.
  * ``max_answer`` is one answer's bytes. The largest legitimate answer is a 1 MiB
    document (its JSON appears twice: text and structured content, escaped), so 8 MiB.
    ``get_messages(limit=500)`` of 64 KiB messages is 60+ MiB and is refused (ask for fewer).
  * ``calls_per_door`` calls of one agent run at once (the rest wait unread in the
    socket): the memory one agent can hold in answers being built is this times the
    largest answer a tool builds. A session's notification stream
    (``subscriptions/listen``, open for the session's life) is no call: real clients
    (Claude Code) keep one per session, and two sessions would otherwise take every place.
    ``streams_per_connection`` bounds them instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from qms import MAX_DOCUMENT_BYTES

KIB = 1024
MIB = 1024 * KIB

# JSON-RPC error codes of the hub's bounds (server-defined range -32000..-32099; -32000 is
# the bridge's "hub went away"). The bridge (docker/bin/crowd-mcp-bridge) knows them too.
TOO_MANY_CONNECTIONS = -32010
IDLE_CLOSED = -32011
ANSWER_TOO_LARGE = -32012


@dataclass(frozen=True)
class Limits:
    # MCP doors (one unix socket per agent)
    connections_per_door: int = 16  # open connections of one agent; more are refused
    connections_total: int = 1024  # all doors (MCP + egress, an egress connection counts 2)
    fd_reserve: int = 256  # descriptors kept for the store, Docker, terminals, HTTP
    calls_per_door: int = 2  # an agent's calls running at once; further requests wait unread
    streams_per_connection: int = 2  # subscriptions/listen streams of one session (take no call place)
    idle_timeout: float = 300.0  # seconds without a complete request (and none running): closed
    slow_reader_timeout: float = 10.0  # seconds an answer may wait for the client to read it
    max_request: int = MAX_DOCUMENT_BYTES + 256 * KIB  # one JSON-RPC line (request)
    max_answer: int = 8 * MIB  # one answer line; bigger answers are replaced by an error
    read_chunk: int = 64 * KIB  # bytes read from a socket at a time (and the reader's buffer)
    refusal_event_every: float = 10.0  # at most one refusal event per door and reason per window
    # egress proxy doors
    egress_connections_per_door: int = 64
    egress_header_timeout: float = 10.0
    egress_connect_timeout: float = 10.0
    egress_idle_timeout: float = 300.0
    egress_max_header: int = 16 * KIB
    # streamable HTTP (uvicorn)
    http_connections: int = 64  # open connections; more get 503 and are closed
    http_head_timeout: float = 10.0  # an idle connection must start a request within this
    http_keep_alive: int = 5  # seconds an idle keep-alive connection stays open
    http_max_head: int = 16 * KIB  # h11's largest unfinished event (request line + headers)
    http_backlog: int = 128  # connections the kernel queues before the hub accepts them

    def connection_budget(self, fd_limit: int | None = None) -> int:
        """Connections across all doors: ``connections_total``, but never more than half the
        descriptors left after ``fd_reserve`` (an egress connection uses two)."""
        if fd_limit is None:
            fd_limit = open_file_limit()
        return max(16, min(self.connections_total, (fd_limit - self.fd_reserve) // 2))


DEFAULT = Limits()


def open_file_limit() -> int:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_file_limit(ceiling: int = 65536) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``ceiling``); (before, after)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard if hard != resource.RLIM_INFINITY else ceiling, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft

