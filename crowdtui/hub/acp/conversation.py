"""One agent's conversation as the console shows it, folded from ACP ``session/update``s.

Messages (the operator's, the agent's, the agent's thoughts) grow chunk by chunk; the plan
is replaced whole; a tool call is created once and then updated by id (status, title,
content such as diffs, locations). The agent is hostile input: entries, text per entry and
tool calls are bounded (the oldest entries go first), unknown update kinds are counted and
ignored. Text is kept as the agent sent it; the console makes it inert before showing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_ENTRIES = 2000
MAX_TEXT = 256 * 1024  # characters kept per message or diff side
MAX_CONTENT = 32  # content items kept per tool call
TOOL_STATUSES = ("pending", "in_progress", "completed", "failed")


@dataclass
class Message:
    role: str  # "user" | "agent" | "thought"
    text: str = ""


@dataclass
class Plan:
    entries: list[dict[str, str]] = field(default_factory=list)  # content, status, priority


@dataclass
class ToolCall:
    id: str
    title: str = ""
    kind: str = "other"
    tool: str = ""  # the program's own tool name where the adapter says it (Claude Code: _meta)
    status: str = "pending"
    content: list[dict[str, Any]] = field(default_factory=list)  # {"type": "diff"|"text", ...}
    locations: list[str] = field(default_factory=list)
    raw_input: Any = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    def diffs(self) -> list[dict[str, str]]:
        return [c for c in self.content if c.get("type") == "diff"]


Entry = Message | Plan | ToolCall


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _block_text(block: Any) -> str:
    if isinstance(block, dict):
        if block.get("type") == "text":
            return _text(block.get("text"))
        if block.get("type") == "resource_link":
            return f"[{_text(block.get('name') or block.get('uri'))}]"
    return ""


def _content(items: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "diff":
            out.append({"type": "diff", "path": _text(item.get("path")), "old": _text(item.get("oldText")),
                        "new": _text(item.get("newText"))})
        elif item.get("type") == "content":
            out.append({"type": "text", "text": _block_text(item.get("content"))})
        elif item.get("type") == "terminal":
            out.append({"type": "terminal", "terminal": _text(item.get("terminalId"))})
    return out[:MAX_CONTENT]


class Conversation:
    """The folded conversation; ``listeners`` are called with each entry added or changed."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.tool_calls: dict[str, ToolCall] = {}
        self.ignored = 0  # updates of kinds not shown (or malformed)
        self.listeners: list[Callable[[Entry], None]] = []

    def _changed(self, entry: Entry) -> None:
        for listener in list(self.listeners):
            listener(entry)

    def _add(self, entry: Entry) -> Entry:
        self.entries.append(entry)
        if len(self.entries) > MAX_ENTRIES:
            for gone in self.entries[:len(self.entries) - MAX_ENTRIES]:
                if isinstance(gone, ToolCall):
                    self.tool_calls.pop(gone.id, None)
            del self.entries[:len(self.entries) - MAX_ENTRIES]
        return entry

    def say(self, role: str, text: str) -> Message:
        """Add a chunk of a message; it joins the last entry when that is the same role's."""
        last = self.entries[-1] if self.entries else None
        if isinstance(last, Message) and last.role == role:
            last.text = (last.text + text)[:MAX_TEXT]
            self._changed(last)
            return last
        message = Message(role, text[:MAX_TEXT])
        self._changed(self._add(message))
        return message

    def apply(self, update: dict[str, Any]) -> Entry | None:
        """Fold one ``session/update``'s ``update`` object; returns the entry it touched."""
        kind = update.get("sessionUpdate")
        if kind in ("agent_message_chunk", "agent_thought_chunk", "user_message_chunk"):
            role = {"agent_message_chunk": "agent", "agent_thought_chunk": "thought"}.get(kind, "user")
            text = _block_text(update.get("content"))
            return self.say(role, text) if text else None
        if kind == "plan":
            entries = [{"content": _text(e.get("content")), "status": _text(e.get("status")),
                        "priority": _text(e.get("priority"))}
                       for e in update.get("entries") or [] if isinstance(e, dict)][:100]
            plan = Plan(entries)
            self._changed(self._add(plan))
            return plan
        if kind in ("tool_call", "tool_call_update"):
            tid = update.get("toolCallId")
            if not isinstance(tid, str) or not tid:
                self.ignored += 1
                return None
            call = self.tool_calls.get(tid)
            if call is None:
                call = self.tool_calls[tid] = ToolCall(tid[:200])
                self._add(call)
            if isinstance(update.get("title"), str):
                call.title = _text(update["title"])[:2000]
            if isinstance(update.get("kind"), str):
                call.kind = update["kind"][:40]
            meta = update.get("_meta")
            named = ((meta or {}).get("claudeCode") or {}).get("toolName") if isinstance(meta, dict) and \
                isinstance(meta.get("claudeCode"), dict) else None
            if isinstance(named, str) and named:
                call.tool = named[:200]
            if update.get("status") in TOOL_STATUSES:
                call.status = update["status"]
            if "content" in update:
                call.content = _content(update.get("content"))
            if isinstance(update.get("locations"), list):
                call.locations = [_text(loc.get("path")) for loc in update["locations"][:20] if isinstance(loc, dict)]
            if "rawInput" in update:
                call.raw_input = update.get("rawInput")
            self._changed(call)
            return call
        self.ignored += 1
        return None
