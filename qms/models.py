"""The records the store hands out. Plain frozen dataclasses; times are epoch seconds (float)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Agent:
    name: str
    path: str
    tier: int
    parent: str | None
    description: str
    state: str  # runtime's word: "stopped" until the runtime says otherwise
    state_detail: str
    status: str | None  # agent's own word: working | waiting | done | blocked
    status_note: str
    last_seen: float | None
    updated_at: float


@dataclass(frozen=True)
class Message:
    id: int
    sender: str
    recipient: str
    body: str
    priority: str  # high | normal | low
    thread: str | None
    created_at: float
    read_at: float | None

    @property
    def unread(self) -> bool:
        return self.read_at is None


@dataclass(frozen=True)
class Document:
    id: str  # "SOP-001"
    doc_type: str  # "SOP"
    title: str
    state: str  # "DRAFT", ...
    version: int  # the latest version, or the one asked for in get_document(version=N)
    author: str
    created_at: float
    updated_at: float
    holder: str | None  # who has it checked out (the lease may have expired: see is_held)
    lease_expires_at: float | None
    content: str = ""
    taken_at: float | None = None
    executable: bool = False
    latest_version: int = 0  # always the newest version number

    def is_held(self, now: float | None = None) -> bool:
        """True while someone holds an unexpired checkout lease."""
        if self.holder is None or self.lease_expires_at is None:
            return False
        return self.lease_expires_at > (time.time() if now is None else now)


@dataclass(frozen=True)
class Version:
    number: int
    author: str
    created_at: float
    note: str | None
    size: int  # bytes of UTF-8 content


@dataclass(frozen=True)
class Task:
    id: int
    doc_id: str
    kind: str  # review | approval
    assignee: str
    created_at: float
    doc_title: str
    doc_state: str
    routed_by: str = ""
    round: int = 0


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    actor: str
    kind: str
    subject: str
    detail: dict[str, Any] = field(default_factory=dict)
