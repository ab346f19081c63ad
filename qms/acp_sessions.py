"""The ACP session of each agent in ``mode: acp`` (``acp_sessions``, migration 061).

Saving a session is an event (``acp.session``, with whether it was new, loaded or resumed),
so the console's Activity view and the audit trail see it.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qms.event_rows import add_event
from qms.names import validate_name

if TYPE_CHECKING:
    from qms.store import Store

MAX_SESSION_ID = 200
LOAD, RESUME, NEITHER = 1, 2, 0


@dataclass(frozen=True)
class AcpSession:
    agent: str
    session_id: str
    cwd: str
    adapter: str
    can_load: int
    updated_at: float


async def save_session(store: "Store", agent: str, session_id: str, *, cwd: str, adapter: str, can_load: int,
                       how: str, actor: str = "operator") -> None:
    """Record ``agent``'s session (``how``: new | loaded | resumed)."""
    validate_name(agent)
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_SESSION_ID:
        raise ValueError(f"an ACP session id is 1 to {MAX_SESSION_ID} characters")

    def tx(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO acp_sessions (agent, session_id, cwd, adapter, can_load, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (agent) DO UPDATE SET session_id = excluded.session_id, cwd = excluded.cwd, "
            "adapter = excluded.adapter, can_load = excluded.can_load, updated_at = excluded.updated_at",
            (agent, session_id, cwd, adapter[:200], int(can_load), time.time()))
        add_event(conn, store, actor, "acp.session", agent, {"session": session_id, "how": how, "adapter": adapter[:200]})

    await store.write_sync(tx)


async def get_session(store: "Store", agent: str) -> AcpSession | None:
    rows = await store.query("SELECT agent, session_id, cwd, adapter, can_load, updated_at FROM acp_sessions "
                             "WHERE agent = ?", (agent,))
    return AcpSession(*rows[0]) if rows else None


async def forget_session(store: "Store", agent: str) -> bool:
    def tx(conn: sqlite3.Connection) -> bool:
        return conn.execute("DELETE FROM acp_sessions WHERE agent = ?", (agent,)).rowcount > 0

    return await store.write_sync(tx)
