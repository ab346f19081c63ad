"""Hub bearer tokens (``hub_tokens``) for agents that reach the hub over streamable HTTP.

The store keeps only a token's SHA-256 (and a short prefix so people can tell tokens
apart). Issuing and revoking are events (``hub.token_issued``, ``hub.token_revoked``);
a revocation is seen by every process's next lookup.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qms.event_rows import add_event
from qms.names import validate_name
from qms.registry import no_such_agent

if TYPE_CHECKING:
    from qms.store import Store

MAX_TOKEN_CHARS = 512  # a longer "token" is never one of ours: not even hashed


@dataclass(frozen=True)
class TokenInfo:
    id: int
    agent: str
    prefix: str
    created_at: float
    created_by: str
    revoked_at: float | None
    last_used_at: float | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


async def add_token(store: "Store", agent: str, token: str, *, prefix: str, actor: str, now: float) -> int:
    """Store ``token``'s hash for ``agent`` (a registered agent); returns the token's id."""
    validate_name(agent)

    def tx(conn: sqlite3.Connection) -> int:
        if conn.execute("SELECT 1 FROM agents WHERE name = ?", (agent,)).fetchone() is None:
            raise no_such_agent(agent)
        tid = conn.execute(
            "INSERT INTO hub_tokens (agent, token_hash, prefix, created_at, created_by) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id", (agent, hash_token(token), prefix, now, actor)).fetchone()[0]
        add_event(conn, store, actor, "hub.token_issued", agent, {"token_id": tid})
        return tid

    return await store.write_sync(tx)


async def revoke_tokens(store: "Store", agent: str, *, actor: str, now: float, token_id: int | None = None) -> list[int]:
    """Revoke every valid token of ``agent`` (or only ``token_id``); returns the ids revoked."""
    validate_name(agent)
    sql = "UPDATE hub_tokens SET revoked_at = ? WHERE agent = ? AND revoked_at IS NULL"
    params: list[Any] = [now, agent]
    if token_id is not None:
        sql += " AND id = ?"
        params.append(token_id)

    def tx(conn: sqlite3.Connection) -> list[int]:
        ids = [r[0] for r in conn.execute(sql + " RETURNING id", params)]
        if ids:
            add_event(conn, store, actor, "hub.token_revoked", agent, {"token_ids": ids})
        return ids

    return await store.write_sync(tx)


async def list_tokens(store: "Store", agent: str | None = None) -> list[TokenInfo]:
    sql = "SELECT id, agent, prefix, created_at, created_by, revoked_at, last_used_at FROM hub_tokens"
    params: tuple = ()
    if agent is not None:
        sql += " WHERE agent = ?"
        params = (agent,)
    return [TokenInfo(*tuple(r)) for r in await store.query(sql + " ORDER BY id", params)]


async def agent_for_token(store: "Store", token: str) -> str | None:
    """The agent a valid (unrevoked) token speaks for, else None."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    rows = await store.query("SELECT agent FROM hub_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                             (hash_token(token),))
    return rows[0][0] if rows else None
