"""A stand-in for the OpenAI Responses API (what Codex CLI speaks), for tests only.

    standin = ResponsesStandIn(call=("crowd", "send_message", {"to": "operator", "body": "hi"}),
                               host="127.0.0.2").start()

``POST /v1/responses`` with ``stream: true`` answers server-sent events in the documented
shapes (``response.created``, ``response.output_item.added`` / ``.done``,
``response.completed``): the first request whose offered tools include the wanted MCP tool
gets one ``function_call`` of it; a request that carries that call's
``function_call_output`` gets a final assistant message quoting it. Every request is
recorded (``standin.requests``: path, headers, JSON body). Standard library only;
``Connection: close`` on every answer (the crowd egress proxy forwards one request per
connection).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def tool_names(body: dict) -> list[str]:
    """The names of the tools a request offers (functions, and tools inside namespaces)."""
    names: list[str] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("name"):
            names.append(str(tool["name"]))
        for inner in tool.get("tools") or []:  # a namespace of tools
            if isinstance(inner, dict) and inner.get("name"):
                names.append(f"{tool.get('name', '')}.{inner['name']}")
    return names


def outputs(body: dict) -> dict[str, str]:
    """call_id -> output of the function_call_output items the request carries."""
    found = {}
    for item in body.get("input") or []:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            out = item.get("output")
            found[str(item.get("call_id"))] = out if isinstance(out, str) else json.dumps(out)
    return found


class ResponsesStandIn:
    CALL_ID = "call_crowd_1"

    def __init__(self, *, server: str, tool: str, arguments: dict[str, Any], host: str = "127.0.0.1",
                 port: int = 0):
        self.server, self.tool, self.arguments = server, tool, arguments
        self.requests: list[dict] = []
        self.called_as: str | None = None  # the name the tool was offered under
        self.result: str | None = None  # what the tool answered, as the agent sent it back
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._plain(404, b'{"error": "not here"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                standin.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if not self.path.rstrip("/").endswith("/responses"):
                    self._plain(404, b'{"error": "only /v1/responses here"}')
                    return
                self._stream(standin._answer(body), str(body.get("model", "")))

            def _plain(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, item: dict, model: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                rid = f"resp_{len(standin.requests)}"
                base = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model}
                events = [
                    ("response.created", {"response": {**base, "status": "in_progress", "output": []}}),
                    ("response.in_progress", {"response": {**base, "status": "in_progress", "output": []}}),
                    ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress"}}),
                    ("response.output_item.done", {"output_index": 0, "item": item}),
                    ("response.completed", {"response": {**base, "status": "completed", "output": [item],
                                                         "usage": {"input_tokens": 10, "output_tokens": 5,
                                                                   "total_tokens": 15,
                                                                   "input_tokens_details": {"cached_tokens": 0},
                                                                   "output_tokens_details": {"reasoning_tokens": 0}}}}),
                ]
                for n, (kind, data) in enumerate(events):
                    payload = json.dumps({"type": kind, "sequence_number": n, **data})
                    self.wfile.write(f"event: {kind}\ndata: {payload}\n\n".encode())
                    self.wfile.flush()

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = host, self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def _answer(self, body: dict) -> dict:
        done = outputs(body).get(self.CALL_ID)
        if done is not None:
            self.result = done
            return {"type": "message", "id": "msg_done", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": f"The crowd tool answered: {done[:200]}",
                                 "annotations": []}]}
        wanted = [n for n in tool_names(body) if n.endswith(self.tool) and self.server in n]
        if wanted and self.called_as is None:
            self.called_as = wanted[0]
            name, _, inner = wanted[0].rpartition(".")
            item = {"type": "function_call", "id": "fc_crowd_1", "call_id": self.CALL_ID, "status": "completed",
                    "name": inner or wanted[0], "arguments": json.dumps(self.arguments)}
            if name:
                item["namespace"] = name
            return item
        return {"type": "message", "id": "msg_other", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Nothing to do.", "annotations": []}]}

    def start(self) -> "ResponsesStandIn":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="responses-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
