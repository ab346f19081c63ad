"""What every model-API stand-in shares: a threaded HTTP server on ``host:port`` that
records each request (path without query, headers, JSON or form body) and answers what the
subclass's :meth:`StandIn.answer` says — plain JSON or server-sent events — always with
``Connection: close`` (the crowd egress proxy forwards one request per connection).
Standard library only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """A plain JSON answer (``events`` is None) or a stream of server-sent events."""

    status: int = 200
    body: Any = None  # JSON-able, for a plain answer
    events: list[tuple[str | None, Any]] | None = None  # (event name or None, data) frames
    raw: bytes | None = field(default=None, repr=False)  # a plain answer's bytes as they are
    eol: str = "\n"  # the line end of event frames

    @classmethod
    def json(cls, status: int, body: Any) -> "Reply":
        return cls(status=status, body=body)

    @classmethod
    def stream(cls, events: list[tuple[str | None, Any]], *, eol: str = "\n") -> "Reply":
        return cls(events=events, eol=eol)


def _decode_body(content_type: str, raw: bytes) -> Any:
    """A JSON body, or a form's fields (one value each, as strings) for form-encoded ones."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {}


class StandIn:
    """Subclasses implement :meth:`answer`; ``start()`` serves, ``stop()`` ends."""

    name = "standin"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified on every recorded request
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass  # the tests read standin.requests, not stderr

            def do_HEAD(self) -> None:
                self._send(standin.answer("HEAD", self.path.split("?", 1)[0], {}), head=True)

            def do_GET(self) -> None:
                self._send(standin.answer("GET", self.path.split("?", 1)[0], {}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = _decode_body(self.headers.get("Content-Type", ""), raw)
                path = self.path.split("?", 1)[0]
                with standin.changed:
                    standin.requests.append({"path": path, "headers": dict(self.headers.items()), "body": body})
                    standin.changed.notify_all()
                self._send(standin.answer("POST", path, body))

            def _send(self, reply: Reply, *, head: bool = False) -> None:
                self.close_connection = True
                self.send_response(reply.status)
                if reply.events is None:
                    data = reply.raw if reply.raw is not None else (
                        b"" if reply.body is None else json.dumps(reply.body).encode())
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if not head:
                        self.wfile.write(data)
                    return
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for kind, data in reply.events:
                    eol = reply.eol
                    frame = (f"event: {kind}{eol}" if kind else "") + f"data: {json.dumps(data)}{eol}{eol}"
                    self.wfile.write(frame.encode())
                    self.wfile.flush()

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.thread: threading.Thread | None = None

    def answer(self, method: str, path: str, body: dict) -> Reply:
        raise NotImplementedError

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"{self.name}-standin", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
