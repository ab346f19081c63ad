"""Fixtures for the egress tests: HTTP servers on the host's loopback and a store."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = f"hello from {self.server.label} {self.path} host={self.headers.get('Host')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """Factory: ``http_server("label") -> port`` on 127.0.0.1; every server is shut down afterwards."""
    servers = []

    def start(label: str) -> int:
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        srv.label = label
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv.server_address[1]

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    yield s
    await s.close()
