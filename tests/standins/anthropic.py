"""A stand-in for the Anthropic Messages API, driven by a script of turns (tests only).

    standin = AnthropicStandIn([
        Turn(when="new message", tool="mcp__crowd__get_messages", input={}),
        Turn(when="hello from the operator", text="Done."),
    ], host="127.0.0.2")
    standin.start(); ...; standin.stop()

``POST /v1/messages`` (streaming server-sent events or a plain JSON answer, as asked):
the *main-loop* requests (those offering tools) are matched against the script in order:
the first turn not yet used whose ``when`` text occurs in the last user message (its text
and any tool results) answers, with text and/or one ``tool_use`` block (streamed as
``input_json_delta``). Everything else (side requests without tools, or no match) gets a
short text answer. ``POST /v1/messages/count_tokens`` answers a token count. Every request
is recorded (``standin.requests``: path, headers, JSON body) so tests can check the model
name and the system prompt. Standard library only; one thread per connection;
``Connection: close`` on every answer (the crowd egress proxy forwards one request per
connection).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.standins.server import Reply, StandIn


@dataclass
class Turn:
    when: str  # text the last user message (or a tool result in it, or its tool_use_id) must contain
    name: str = ""  # the tool_use id is "toolu_<name>": a later turn can wait for its result
    text: str = ""  # text to answer with (before the tool call, if any)
    thinking: str = ""  # a thinking block before everything else (streamed as thinking_delta)
    tool: str | None = None  # a tool to call, e.g. "mcp__crowd__get_messages"
    input: dict[str, Any] = field(default_factory=dict)
    used: bool = False


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_text_of(b.get("text")) if b.get("type") == "text"
                         else f"{b.get('tool_use_id', '')}\n{_text_of(b.get('content'))}"
                         for b in content if isinstance(b, dict))
    return ""


def system_text(body: dict) -> str:
    return _text_of(body.get("system"))


def last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


class AnthropicStandIn(StandIn):
    name = "anthropic"

    def __init__(self, turns: list[Turn], *, host: str = "127.0.0.1", port: int = 0,
                 default_text: str = "OK."):
        self.turns = turns
        self.default_text = default_text
        super().__init__(host=host, port=port)

    def answer(self, method: str, path: str, body: dict) -> Reply:
        if method == "HEAD":
            return Reply(200, raw=b"")
        if method == "GET":
            return Reply.json(200, {})
        if path.endswith("/count_tokens"):
            return Reply.json(200, {"input_tokens": 100})
        if not path.endswith("/messages"):
            return Reply.json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
        turn = self._pick(body)
        blocks: list[dict[str, Any]] = []
        text = turn.text if turn else self.default_text
        if turn and turn.thinking:
            blocks.append({"type": "thinking", "thinking": turn.thinking, "signature": "stand-in"})
        if text:
            blocks.append({"type": "text", "text": text})
        if turn and turn.tool:
            blocks.append({"type": "tool_use", "id": f"toolu_{turn.name or len(self.requests)}",
                           "name": turn.tool, "input": turn.input})
        model = body.get("model") or "stand-in"
        stop = "tool_use" if turn and turn.tool else "end_turn"
        if body.get("stream"):
            return Reply.stream(self._events(model, blocks, stop))
        return Reply.json(200, {"id": f"msg_{len(self.requests):04d}", "type": "message", "role": "assistant",
                                "model": model, "content": blocks, "stop_reason": stop, "stop_sequence": None,
                                "usage": {"input_tokens": 100, "output_tokens": 10}})

    def _events(self, model: str, blocks: list[dict], stop: str) -> list[tuple[str | None, Any]]:
        events: list[tuple[str | None, Any]] = []

        def event(kind: str, data: dict) -> None:
            events.append((kind, data))

        event("message_start", {"type": "message_start", "message": {
            "id": f"msg_{len(self.requests):04d}", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 1}}})
        for i, block in enumerate(blocks):
            if block["type"] == "thinking":
                event("content_block_start", {"type": "content_block_start", "index": i,
                                              "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                event("content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
                event("content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "signature_delta", "signature": block["signature"]}})
            elif block["type"] == "text":
                event("content_block_start", {"type": "content_block_start", "index": i,
                                              "content_block": {"type": "text", "text": ""}})
                event("content_block_delta", {"type": "content_block_delta", "index": i,
                                              "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                event("content_block_start", {"type": "content_block_start", "index": i,
                                              "content_block": {"type": "tool_use", "id": block["id"],
                                                                "name": block["name"], "input": {}}})
                partial = json.dumps(block["input"])
                half = len(partial) // 2
                for piece in (partial[:half], partial[half:]):
                    event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                  "delta": {"type": "input_json_delta", "partial_json": piece}})
            event("content_block_stop", {"type": "content_block_stop", "index": i})
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": 10}})
        event("message_stop", {"type": "message_stop"})
        return events

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _pick(self, body: dict) -> Turn | None:
        if not body.get("tools"):  # side requests (titles, summaries) do not consume the script
            return None
        last = last_user_text(body)
        with self.lock:
            for turn in self.turns:
                if not turn.used and turn.when in last:
                    turn.used = True
                    return turn
        return None

    def main_requests(self) -> list[dict]:
        """The recorded requests that offered tools (the agent's own turns)."""
        with self.lock:
            return [r for r in self.requests if r["body"].get("tools")]

    def wait_used(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` turns of the script were used."""
        import time

        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(t.used for t in self.turns) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True
