"""Secret rows (``secrets``): a name, a nonce and a ciphertext. Never a value in clear.

Encrypting and decrypting is the caller's (``crowdtui.secrets.Vault``); the store keeps
the rows and records ``secret.created|updated|removed`` events, which carry only the name.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qms.event_rows import add_event

if TYPE_CHECKING:
    from qms.store import Store


@dataclass(frozen=True)
class SealedSecret:
    name: str
    nonce: bytes
    ciphertext: bytes


async def put_secret(store: "Store", name: str, nonce: bytes, ciphertext: bytes, *, actor: str, now: float) -> bool:
    """Store (or replace) the sealed secret ``name``; returns whether it existed before."""

    def tx(conn: sqlite3.Connection) -> bool:
        existed = conn.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone() is not None
        conn.execute(
            "INSERT INTO secrets (name, nonce, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
            "updated_at = excluded.updated_at", (name, nonce, ciphertext, now, now))
        add_event(conn, store, actor, "secret.updated" if existed else "secret.created", name, {})
        return existed

    return await store.write_sync(tx)


async def delete_secret(store: "Store", name: str, *, actor: str) -> bool:
    """Remove the secret ``name``; False when there was none (nothing recorded)."""

    def tx(conn: sqlite3.Connection) -> bool:
        if conn.execute("DELETE FROM secrets WHERE name = ? RETURNING name", (name,)).fetchone() is None:
            return False
        add_event(conn, store, actor, "secret.removed", name, {})
        return True

    return await store.write_sync(tx)


async def secret_names(store: "Store") -> list[tuple[str, float]]:
    """Every secret's name and when it last changed, by name."""
    return [(r["name"], r["updated_at"]) for r in await store.query("SELECT name, updated_at FROM secrets ORDER BY name")]


async def sealed_secret(store: "Store", name: str) -> SealedSecret | None:
    rows = await store.query("SELECT nonce, ciphertext FROM secrets WHERE name = ?", (name,))
    return SealedSecret(name, rows[0]["nonce"], rows[0]["ciphertext"]) if rows else None
