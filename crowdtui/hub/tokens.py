"""Bearer tokens for agents that reach the hub over streamable HTTP.

A token is shown once when issued; the store keeps only its SHA-256 hash (and a short
prefix so people can tell tokens apart). Revoking sets ``revoked_at``; the hub checks
the table on every request, so a revocation from another process takes effect at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from qms.names import OPERATOR

TOKEN_PREFIX = "crowd_"


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


async def issue_token(store: Any, agent: str, *, actor: str = OPERATOR) -> str:
    """Create a token for ``agent`` (which must be registered); returns the token itself."""
    from qms.errors import NotFound
    from qms.names import validate_name

    validate_name(agent)
    if await store.get_agent(agent) is None:
        raise NotFound(f"no agent named {agent!r} is registered; check the name against the roster (agents/*/AGENT.md)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with store.write() as db:
        cur = await db.execute(
            "INSERT INTO hub_tokens (agent, token_hash, prefix, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (agent, hash_token(token), token[: len(TOKEN_PREFIX) + 6], time.time(), actor),
        )
        await store.append_event_in(db, actor, "hub.token_issued", agent, {"token_id": cur.lastrowid})
    return token


async def revoke_tokens(store: Any, agent: str, *, actor: str = OPERATOR, token_id: int | None = None) -> int:
    """Revoke every valid token of ``agent`` (or only ``token_id``); returns how many."""
    from qms.names import validate_name

    validate_name(agent)
    sql = "UPDATE hub_tokens SET revoked_at = ? WHERE agent = ? AND revoked_at IS NULL"
    params: list[Any] = [time.time(), agent]
    if token_id is not None:
        sql += " AND id = ?"
        params.append(token_id)
    async with store.write() as db:
        cur = await db.execute(sql + " RETURNING id", params)
        ids = [r[0] for r in await cur.fetchall()]
        if ids:
            await store.append_event_in(db, actor, "hub.token_revoked", agent, {"token_ids": ids})
    return len(ids)


async def list_tokens(store: Any, agent: str | None = None) -> list[TokenInfo]:
    sql = "SELECT id, agent, prefix, created_at, created_by, revoked_at, last_used_at FROM hub_tokens"
    params: tuple = ()
    if agent is not None:
        sql += " WHERE agent = ?"
        params = (agent,)
    rows = await store.query(sql + " ORDER BY id", params)
    return [TokenInfo(*tuple(r)) for r in rows]


async def agent_for_token(store: Any, token: str) -> str | None:
    """The agent a valid (unrevoked) token speaks for, else None."""
    if not token or len(token) > 512:
        return None
    rows = await store.query(
        "SELECT agent FROM hub_tokens WHERE token_hash = ? AND revoked_at IS NULL", (hash_token(token),)
    )
    return rows[0][0] if rows else None
