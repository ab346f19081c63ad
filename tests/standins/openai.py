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
import time
from typing import Any

from tests.standins.server import Reply, StandIn


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


class ResponsesStandIn(StandIn):
    name = "responses"
    CALL_ID = "call_crowd_1"

    def __init__(self, *, server: str, tool: str, arguments: dict[str, Any], host: str = "127.0.0.1",
                 port: int = 0):
        self.server_name, self.tool, self.arguments = server, tool, arguments
        self.called_as: str | None = None  # the name the tool was offered under
        self.result: str | None = None  # what the tool answered, as the agent sent it back
        super().__init__(host=host, port=port)

    def answer(self, method: str, path: str, body: dict) -> Reply:
        if method != "POST":
            return Reply(404, raw=b'{"error": "not here"}')
        if not path.rstrip("/").endswith("/responses"):
            return Reply(404, raw=b'{"error": "only /v1/responses here"}')
        return Reply.stream(self._events(self._answer(body), str(body.get("model", ""))))

    def _events(self, item: dict, model: str) -> list[tuple[str | None, Any]]:
        rid = f"resp_{len(self.requests)}"
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
        return [(kind, {"type": kind, "sequence_number": n, **data}) for n, (kind, data) in enumerate(events)]

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
        wanted = [n for n in tool_names(body) if n.endswith(self.tool) and self.server_name in n]
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
