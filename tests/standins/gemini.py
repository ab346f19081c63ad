"""A stand-in for the Gemini API (what Gemini CLI speaks through @google/genai), for tests only.

    standin = GeminiStandIn(server="crowd", tool="send_message",
                            arguments={"to": "operator", "body": "hi"}, host="127.0.0.2").start()

Gemini CLI takes its base URL from ``GOOGLE_GEMINI_BASE_URL`` and calls
``POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`` (its key in the
``x-goog-api-key`` header), answered here with server-sent events, each ``data:`` a
``GenerateContentResponse`` (``candidates[0].content.parts``). The first request whose
``tools[].functionDeclarations`` offer the wanted MCP tool gets one ``functionCall`` part of
it; a request whose ``contents`` carry that call's ``functionResponse`` gets a final text
answer quoting it. Anything else is a 404 (Gemini CLI 0.61 makes no other call in a
print-mode turn with a named model). Every request is recorded (``standin.requests``: path, headers, JSON body). Standard library only;
``Connection: close`` on every answer (the crowd egress proxy forwards one request per
connection).
"""

from __future__ import annotations

import json
from typing import Any

from tests.standins.server import Reply, StandIn

USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}


def tool_names(body: dict) -> list[str]:
    """The names of the functions a request declares (``tools[].functionDeclarations``)."""
    names: list[str] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        for decl in tool.get("functionDeclarations") or []:
            if isinstance(decl, dict) and decl.get("name"):
                names.append(str(decl["name"]))
    return names


def function_responses(body: dict) -> dict[str, str]:
    """name -> JSON of the response, for each ``functionResponse`` part in ``contents``."""
    found = {}
    for content in body.get("contents") or []:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            answer = part.get("functionResponse") if isinstance(part, dict) else None
            if isinstance(answer, dict):
                found[str(answer.get("name"))] = json.dumps(answer.get("response"))
    return found


def text_answer(text: str) -> dict:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                            "index": 0}], "usageMetadata": USAGE}


class GeminiStandIn(StandIn):
    name = "gemini"

    def __init__(self, *, server: str, tool: str, arguments: dict[str, Any], host: str = "127.0.0.1",
                 port: int = 0):
        self.server_name, self.tool, self.arguments = server, tool, arguments
        self.called_as: str | None = None  # the name the tool was declared under
        self.result: str | None = None  # what the tool answered, as the agent sent it back
        super().__init__(host=host, port=port)

    def answer(self, method: str, path: str, body: dict) -> Reply:
        if method == "POST" and path.endswith(":streamGenerateContent"):
            return Reply.stream([(None, self._answer(body))], eol="\r\n")
        message = "only models/*:streamGenerateContent here" if method == "POST" else "not here"
        return Reply.json(404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}})

    @property
    def url(self) -> str:
        """The base URL (Gemini CLI adds ``/v1beta/models/...``)."""
        return f"http://{self.host}:{self.port}"

    def _answer(self, body: dict) -> dict:
        if self.called_as is not None:
            done = function_responses(body).get(self.called_as)
            if done is not None:
                self.result = done
                return text_answer(f"The crowd tool answered: {done[:200]}")
        wanted = [n for n in tool_names(body) if n.endswith(self.tool) and self.server_name in n] or \
                 [n for n in tool_names(body) if n == self.tool]
        if wanted and self.called_as is None:
            self.called_as = wanted[0]
            return {"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": wanted[0], "args": self.arguments}}]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": USAGE}
        return text_answer("Nothing to do.")
