"""The relay's wire format: frames on one TLS connection between an engine's relay and the hub.

The relay program in the agent image (``docker/bin/crowd-relay``, standard library only)
speaks the same format; a change here is a change there (tests/relay runs both).

    frame  = type (1 byte) | stream id (4 bytes, big-endian) | length (4 bytes) | payload
    length <= MAX_PAYLOAD; stream 0 is the link itself

    relay -> hub   HELLO   {"engine": NAME, "version": 1}           once, first
    hub -> relay   WELCOME {"engine": NAME}                         or REFUSE {"reason": ...}
    hub -> relay   SERVE   {"agents": {NAME: ["mcp", "egress"]}}    the sockets to hold (whole list)
    relay -> hub   OPEN    {"agent": NAME, "door": DOOR}            a new stream (odd ids, increasing)
    hub -> relay   REFUSED {"reason": ...}                          the stream is not served
    both           DATA    bytes of the stream
    both           CREDIT  4 bytes: this many more bytes may be sent on the stream
    both           CLOSE   the stream ended
    relay -> hub   PING, hub -> relay PONG                          liveness (stream 0)

Doors (one socket each in the agent's folder): ``mcp`` (mcp.sock, the hub's MCP door),
``egress`` (egress.sock, the agent's egress proxy) and ``secrets`` (secrets.sock, listed only
while a secrets hand-off is pending for the agent: the hub answers one stream with the values
and closes it; ``crowdtui.hub.relay_secrets``).

Flow control: each side may have at most WINDOW bytes of a stream sent and not yet credited
back; the receiver credits bytes once they are handed on (written and drained), so one slow
agent never stalls the others and nothing is buffered without bound.
"""

from __future__ import annotations

import asyncio
import json
import struct

HELLO, WELCOME, REFUSE, SERVE, OPEN, REFUSED, DATA, CREDIT, CLOSE, PING, PONG = range(1, 12)
NAMES = {HELLO: "HELLO", WELCOME: "WELCOME", REFUSE: "REFUSE", SERVE: "SERVE", OPEN: "OPEN",
         REFUSED: "REFUSED", DATA: "DATA", CREDIT: "CREDIT", CLOSE: "CLOSE", PING: "PING", PONG: "PONG"}
HEADER = struct.Struct("!BII")
MAX_PAYLOAD = 64 * 1024  # one frame's payload; bigger frames end the link
WINDOW = 256 * 1024  # bytes of one stream in flight (sent, not yet credited)
VERSION = 1
DOORS = ("mcp", "egress", "secrets")


class ProtocolError(Exception):
    """The peer broke the protocol: the link is closed."""


def frame(kind: int, stream: int = 0, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(payload)} bytes over {MAX_PAYLOAD}")
    return HEADER.pack(kind, stream, len(payload)) + payload


def control(kind: int, stream: int = 0, **fields) -> bytes:
    return frame(kind, stream, json.dumps(fields, separators=(",", ":")).encode())


def credit(stream: int, n: int) -> bytes:
    return frame(CREDIT, stream, struct.pack("!I", n))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    """One frame; ``ProtocolError`` for an unknown type or an oversized payload,
    ``asyncio.IncompleteReadError`` when the link ends."""
    kind, stream, length = HEADER.unpack(await reader.readexactly(HEADER.size))
    if kind not in NAMES:
        raise ProtocolError(f"unknown frame type {kind}")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"{NAMES[kind]} frame of {length} bytes over {MAX_PAYLOAD}")
    return kind, stream, (await reader.readexactly(length) if length else b"")


def parse_control(payload: bytes) -> dict:
    try:
        value = json.loads(payload)
    except ValueError:
        raise ProtocolError("a control frame was not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("a control frame was not a JSON object")
    return value


def parse_credit(payload: bytes) -> int:
    if len(payload) != 4:
        raise ProtocolError("a CREDIT frame must carry 4 bytes")
    return struct.unpack("!I", payload)[0]
