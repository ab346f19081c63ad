"""Bearer tokens for agents that reach the hub over streamable HTTP.

A token is shown once when issued; the store keeps only its SHA-256 hash and a short
prefix (:mod:`qms.tokens`). The hub checks the table on every request, so a revocation
from another process takes effect at once.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from qms.errors import NotFound
from qms.names import OPERATOR, validate_name
from qms.tokens import TokenInfo, agent_for_token, hash_token, list_tokens
from qms import tokens as table

TOKEN_PREFIX = "crowd_"
__all__ = ["TOKEN_PREFIX", "TokenInfo", "agent_for_token", "hash_token", "issue_token", "list_tokens", "revoke_tokens"]


async def issue_token(store: Any, agent: str, *, actor: str = OPERATOR) -> str:
    """Create a token for ``agent`` (which must be registered); returns the token itself."""
    validate_name(agent)
    if await store.get_agent(agent) is None:
        raise NotFound(f"no agent named {agent!r} is registered; check the name against the roster (agents/*/AGENT.md)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await table.add_token(store, agent, token, prefix=token[: len(TOKEN_PREFIX) + 6], actor=actor, now=time.time())
    return token


async def revoke_tokens(store: Any, agent: str, *, actor: str = OPERATOR, token_id: int | None = None) -> int:
    """Revoke every valid token of ``agent`` (or only ``token_id``); returns how many."""
    return len(await table.revoke_tokens(store, agent, actor=actor, now=time.time(), token_id=token_id))
