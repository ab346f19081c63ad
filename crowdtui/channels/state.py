"""A network channel's durable state: its cursor on the network (Telegram update offset,
IMAP UID, ...), the outbound ids it already delivered (so a retry from dispatch after a
lost answer is not sent twice), and small per-network memories (email threads).

One JSON file, ``.crowd/channels/<name>/state.json``, replaced atomically and fsynced on
every save: a cursor is saved only after dispatch acknowledged what it covers, so a
channel killed at any point re-reads at most what dispatch already has (and dispatch
drops those as duplicates by id).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_SENT = 5000  # outbound ids remembered (oldest forgotten first)


class ChannelState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.cursor: Any = None
        self.sent: dict[str, int] = {}  # outbound id -> parts delivered (-1: all)
        self.memory: dict[str, Any] = {}
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            from crowdtui.errors import CrowdError

            raise CrowdError(f"channel state {self.path} is unreadable ({exc}); move it aside to start "
                             "over (dispatch drops messages it already has)") from None
        self.cursor = data.get("cursor")
        self.sent = {str(k): int(v) for k, v in (data.get("sent") or {}).items()}
        self.memory = dict(data.get("memory") or {})

    def save(self) -> None:
        while len(self.sent) > MAX_SENT:
            self.sent.pop(next(iter(self.sent)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"cursor": self.cursor, "sent": self.sent, "memory": self.memory}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def advance(self, cursor: Any) -> None:
        self.cursor = cursor
        self.save()

    def parts_done(self, outbound_id: str) -> int:
        return self.sent.get(outbound_id, 0)

    def note_parts(self, outbound_id: str, parts: int) -> None:
        self.sent[outbound_id] = parts
        self.save()
