"""The agent registry: who exists, where in the tree, and what state/status they are in.

The operator is not a row: it always exists, is tier 0, and is never listed.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

from qms.core import StoreCore
from qms.errors import InvalidInput, NotFound
from qms.models import Agent
from qms.names import OPERATOR, shown, validate_name, validate_path, validate_text
from qms.writer import Transaction

STATUSES = ("working", "waiting", "done", "blocked")
STATE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MAX_TIER = 64


def agent_from_row(row: sqlite3.Row) -> Agent:
    return Agent(
        name=row["name"], path=row["path"], tier=row["tier"], parent=row["parent"],
        description=row["description"], state=row["state"], state_detail=row["state_detail"],
        status=row["status"], status_note=row["status_note"], last_seen=row["last_seen"],
        updated_at=row["updated_at"],
    )


def agent_names_tx(conn: sqlite3.Connection) -> set[str]:
    """Every registered agent's name, read inside an open transaction (the writer's thread)."""
    return {r[0] for r in conn.execute("SELECT name FROM agents")}


def no_such_agent(name: str) -> NotFound:
    return NotFound(
        f"no agent named '{shown(name)}' is registered; check the name (the roster in agents/ "
        "lists them)"
    )


async def agent_row(db: Transaction, name: str) -> sqlite3.Row | None:
    rows = await db.execute_fetchall("SELECT * FROM agents WHERE name = ?", (name,))
    return rows[0] if rows else None


async def require_principal(db: Transaction, name: str) -> None:
    """``name`` is the operator or a registered agent, else NotFound."""
    if name != OPERATOR and await agent_row(db, name) is None:
        raise no_such_agent(name)


class RegistryMixin(StoreCore):
    async def upsert_agent(
        self, name: str, *, path: str, tier: int, parent: str | None = None,
        description: str = "", actor: str = "roster",
    ) -> Agent:
        """Register an agent or update its place in the tree (event only when something changed)."""
        validate_name(name)
        if name == OPERATOR:
            raise InvalidInput("'operator' is the human principal and cannot be registered; rename the agent")
        validate_path(path)
        if isinstance(tier, bool) or not isinstance(tier, int) or not 0 <= tier <= MAX_TIER:
            raise InvalidInput(f"tier must be an integer from 0 to {MAX_TIER}, not '{shown(tier)}'")
        if parent is not None:
            validate_name(parent)
            if parent == name:
                raise InvalidInput(f"agent {name} cannot be its own parent; fix the roster")
        validate_text(description, "description", max_chars=4000, allow_empty=True, multiline=True)
        validate_name(actor)
        now = time.time()
        async with self.write() as db:
            old = await agent_row(db, name)
            new = {"path": path, "tier": tier, "parent": parent, "description": description}
            if old is None:
                await db.execute(
                    "INSERT INTO agents (name, path, tier, parent, description, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, path, tier, parent, description, now, now),
                )
                await self.append_event_in(db, actor, "agent.registered", name, {**new, "new": True})
            else:
                changed = {k: v for k, v in new.items() if old[k] != v}
                if changed:
                    await db.execute(
                        "UPDATE agents SET path = ?, tier = ?, parent = ?, description = ?, updated_at = ?"
                        " WHERE name = ?",
                        (path, tier, parent, description, now, name),
                    )
                    await self.append_event_in(
                        db, actor, "agent.registered", name, {**changed, "new": False}
                    )
            return agent_from_row(await agent_row(db, name))

    async def remove_agent(self, name: str, *, actor: str) -> None:
        """Remove an agent from the registry (its messages and tasks stay for the record)."""
        validate_name(name)
        validate_name(actor)
        async with self.write() as db:
            rows = await db.execute_fetchall("DELETE FROM agents WHERE name = ? RETURNING path", (name,))
            if not rows:
                raise no_such_agent(name)
            await self.append_event_in(db, actor, "agent.removed", name, {"path": rows[0]["path"]})

    async def set_agent_state(
        self, name: str, state: str, *, detail: str | dict[str, Any] | None = None,
        actor: str = "runtime", unless: tuple[str, ...] = (),
    ) -> Agent:
        """Record the runtime state (e.g. stopped, starting, running, exited); event when it changed.

        ``unless``: states that win over this one — when the agent is in one of them, nothing
        changes (decided inside the write transaction, so a start recorded meanwhile by
        another process is never overwritten, e.g. by a supervisor's "restarting")."""
        validate_name(name)
        if not isinstance(state, str) or not STATE_RE.fullmatch(state):
            raise InvalidInput(f"invalid agent state '{shown(state)}': use a short lower-case word")
        if detail is None:
            text = ""
        elif isinstance(detail, dict):
            text = json.dumps(detail, sort_keys=True, default=str)
        else:
            text = detail
        validate_text(text, "state detail", max_chars=2000, allow_empty=True, multiline=True)
        validate_name(actor)
        async with self.write() as db:
            old = await agent_row(db, name)
            if old is None:
                raise no_such_agent(name)
            if old["state"] in unless:
                return agent_from_row(old)
            if old["state"] != state or old["state_detail"] != text:
                await db.execute(
                    "UPDATE agents SET state = ?, state_detail = ?, updated_at = ? WHERE name = ?",
                    (state, text, time.time(), name),
                )
                await self.append_event_in(
                    db, actor, "agent.state", name,
                    {"state": state, "previous": old["state"], "detail": detail if detail is not None else ""},
                )
            return agent_from_row(await agent_row(db, name))

    async def set_agent_status(self, name: str, status: str, note: str = "", *, actor: str) -> Agent:
        """The agent's own word on its work: working | waiting | done | blocked, with a note."""
        validate_name(name)
        if status not in STATUSES:
            raise InvalidInput(f"invalid status '{shown(status)}': use one of {', '.join(STATUSES)}")
        validate_text(note, "status note", max_chars=500, allow_empty=True)
        validate_name(actor)
        async with self.write() as db:
            rows = await db.execute_fetchall(
                "UPDATE agents SET status = ?, status_note = ?, updated_at = ? WHERE name = ? RETURNING *",
                (status, note, time.time(), name),
            )
            if not rows:
                raise no_such_agent(name)
            await self.append_event_in(db, actor, "agent.status", name, {"status": status, "note": note})
            return agent_from_row(rows[0])

    async def touch_agent(self, name: str) -> None:
        """Record that the agent was just seen (no event: this happens all the time)."""
        validate_name(name)
        async with self.write() as db:
            rows = await db.execute_fetchall(
                "UPDATE agents SET last_seen = ? WHERE name = ? RETURNING name", (time.time(), name)
            )
            if not rows:
                raise no_such_agent(name)

    async def get_agent(self, name: str) -> Agent | None:
        validate_name(name)
        rows = await self.query("SELECT * FROM agents WHERE name = ?", (name,))
        return agent_from_row(rows[0]) if rows else None

    async def list_agents(self) -> list[Agent]:
        """Registered agents ordered by tree path (the operator is not listed)."""
        rows = await self.query("SELECT * FROM agents ORDER BY path, name")
        return [agent_from_row(r) for r in rows]
