"""Per-agent quotas and rate limits on what an agent can make the store keep.

One home for the limits (:class:`Quotas`) and for the counting. Each check is a single
SQL statement over the very table the change writes to (``messages``, ``doc_versions``,
``engine_tasks``), run inside the change's own ``BEGIN IMMEDIATE`` transaction, so two
writers can never both pass on the same remaining allowance (no read-then-write race).
Migration 042 adds the indexes that keep the counting cheap: ``(sender, created_at,
size)`` over messages and ``(author, created_at, size)`` over versions, where ``size`` is
a virtual column (UTF-8 bytes of the body or content) stored only in those indexes.

Who is limited: registered agents (a row in ``agents``). The operator, channels and the
dispatch's own actors are not: they are the operator's machinery, and chat traffic from
channels is a person's, not an agent's. Messages an agent's scheduled task sends are sent
in the agent's name, so they count against that agent too.

A refusal raises :class:`QuotaExceeded` inside the transaction: the change rolls back and
the store records one ``quota.refused`` event (actor = the agent; subject = the limit's
name; detail = limit, used, asked for, retry time) in a transaction of its own
(``Store.write`` / ``Store.write_sync``), so every refusal is in the audit trail.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from qms.errors import InvalidInput, PermissionDenied

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
MiB = 1024 * 1024


@dataclass(frozen=True)
class Quotas:
    """Limits per agent. The field names are the keys of ``[quotas]`` in ``crowd.toml``.

    Messages count one row per recipient (a broadcast to 9 agents counts 9 messages and
    9 times its bytes). Document versions are creates and checkins the agent authored.
    Task limits apply to scheduled tasks an agent creates (the operator's are free).
    """

    messages_per_minute: int = 300  # message rows an agent sends in any 60 s
    message_bytes_per_minute: int = 4 * MiB  # bytes of their bodies in any 60 s
    messages_per_day: int = 10_000  # message rows in any 24 h
    message_bytes_per_day: int = 64 * MiB  # bytes of their bodies in any 24 h
    doc_versions_per_hour: int = 60  # document creates + checkins in any hour
    doc_bytes_total: int = 128 * MiB  # bytes of every document version the agent authored, ever
    tasks_max: int = 20  # scheduled tasks created by the agent that exist at once
    task_min_interval: float = 60.0  # seconds: shortest gap between runs of an agent's task
    task_max_text: int = 4096  # bytes of an agent-created task's message text
    # Agents managing agents (counted by the hub's management tools, crowdtui.hub.manage_tools)
    spawned_per_agent: int = 4  # agents spawned by one agent that exist at once
    agents_running_max: int = 16  # running agents beyond which an agent's start is refused
    # The approval queue (qms.permissions)
    permission_requests_pending: int = 20  # permission requests of one agent waiting at once

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> "Quotas":
        """Quotas from ``crowd.toml``'s ``[quotas]`` table (missing keys keep their default)."""
        if not section:
            return cls()
        if not isinstance(section, Mapping):
            raise InvalidInput("[quotas] in crowd.toml must be a table of key = number")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - set(fields))
        if unknown:
            raise InvalidInput(
                f"unknown [quotas] key(s) {', '.join(map(str, unknown))} in crowd.toml; "
                f"known keys: {', '.join(fields)}"
            )
        values: dict[str, Any] = {}
        for key, value in section.items():
            kind = float if fields[key].type in (float, "float") else int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                kind is int and not float(value).is_integer()
            ):
                raise InvalidInput(f"[quotas] {key} must be a number of at least 0, not {value!r}")
            values[key] = kind(value)
        return cls(**values)


class QuotaExceeded(PermissionDenied):
    """An agent asked for more than its quota allows. ``str(e)`` says which limit, the
    use, and when to try again; ``refusal`` is the ``quota.refused`` event to record."""

    def __init__(self, message: str, *, agent: str, limit: str, detail: dict[str, Any]):
        super().__init__(message)
        self.agent = agent
        self.limit = limit
        self.detail = detail

    def refusal(self) -> tuple[str, str, str, dict[str, Any]]:
        """``(actor, kind, subject, detail)`` of the event that records this refusal."""
        return self.agent, "quota.refused", self.limit, {**self.detail, "reason": str(self)}


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S UTC")


def _span(seconds: float) -> str:
    return {MINUTE: "60 s", HOUR: "hour", DAY: "24 h"}.get(seconds, f"{seconds:g} s")


def _size(n: float) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{int(n)} bytes"


def _refuse(agent: str, limit: str, cap: float, used: float, asked: float, *, bytes_: bool = False,
            retry_at: float | None = None, now: float, what: str, advice: str) -> QuotaExceeded:
    show = _size if bytes_ else (lambda v: f"{int(v)}")
    text = f"{agent} is over its quota {limit} = {show(cap)} ({what}): {show(used)} used, this asks for {show(asked)}"
    detail: dict[str, Any] = {"limit": limit, "max": cap, "used": used, "asked": asked}
    if asked > cap:
        text += f"; this alone is over the limit: {advice}"
    elif retry_at is not None:
        wait = max(1, math.ceil(retry_at - now))
        text += f"; try again after {_utc(retry_at)} (in {wait} s)"
        detail["retry_at"] = retry_at
    else:
        text += f"; {advice}"
    return QuotaExceeded(text + " (the operator can raise it in crowd.toml [quotas])",
                         agent=agent, limit=limit, detail=detail)


# ---- messages ------------------------------------------------------------------------

IS_AGENT = "SELECT 1 FROM agents WHERE name = ?"  # first: nothing is counted for anyone else
MESSAGES_USE = (
    "SELECT COUNT(*) AS n_day, TOTAL(size) AS b_day, MIN(created_at) AS first_day,"
    " TOTAL(created_at >= :minute) AS n_min,"
    " TOTAL(CASE WHEN created_at >= :minute THEN size END) AS b_min,"
    " MIN(CASE WHEN created_at >= :minute THEN created_at END) AS first_min"
    " FROM messages WHERE sender = :who AND created_at >= :day"
)


def check_messages(conn: sqlite3.Connection, quotas: Quotas, sender: str, count: int, size: int,
                   now: float | None = None) -> None:
    """Refuse (QuotaExceeded) if ``sender``, an agent, may not store ``count`` more message
    rows of ``size`` bytes in all now. Call inside the send's write transaction."""
    if conn.execute(IS_AGENT, (sender,)).fetchone() is None:
        return  # the operator, a channel, dispatch: not limited
    now = time.time() if now is None else now
    row = conn.execute(MESSAGES_USE, {"who": sender, "minute": now - MINUTE, "day": now - DAY}).fetchone()
    n_day, b_day, first_day, n_min, b_min, first_min = row
    advice = "send to fewer recipients or put the text in a document and send its id"
    for limit, cap, used, asked, first, window, is_bytes in (
        ("messages_per_minute", quotas.messages_per_minute, n_min, count, first_min, MINUTE, False),
        ("message_bytes_per_minute", quotas.message_bytes_per_minute, b_min, size, first_min, MINUTE, True),
        ("messages_per_day", quotas.messages_per_day, n_day, count, first_day, DAY, False),
        ("message_bytes_per_day", quotas.message_bytes_per_day, b_day, size, first_day, DAY, True),
    ):
        if used + asked > cap:
            raise _refuse(sender, limit, cap, used, asked, bytes_=is_bytes, now=now,
                          retry_at=None if first is None else first + window,
                          what=("message bytes" if is_bytes else "messages") + f" sent in any {_span(window)}",
                          advice=advice)


# ---- document versions ---------------------------------------------------------------

VERSIONS_USE = (
    "SELECT COUNT(*) FILTER (WHERE created_at >= :hour) AS n_hour,"
    " MIN(created_at) FILTER (WHERE created_at >= :hour) AS first_hour,"
    " TOTAL(size) AS b_total"
    " FROM doc_versions WHERE author = :who"
)


async def check_version_in(db: Any, quotas: Quotas, author: str, content: str,
                           now: float | None = None) -> None:
    """Refuse (QuotaExceeded) a new document version (create or checkin) by ``author``, an
    agent, past its quota. Call first inside the change's ``store.write()`` transaction."""
    if not await db.execute_fetchall(IS_AGENT, (author,)):
        return
    now = time.time() if now is None else now
    size = len(content.encode("utf-8"))
    rows = await db.execute_fetchall(VERSIONS_USE, {"who": author, "hour": now - HOUR})
    n_hour, first_hour, b_total = rows[0]
    if n_hour + 1 > quotas.doc_versions_per_hour:
        raise _refuse(author, "doc_versions_per_hour", quotas.doc_versions_per_hour, n_hour, 1, now=now,
                      retry_at=None if first_hour is None else first_hour + HOUR,
                      what="document creates and checkins in any hour", advice="check in less often")
    if b_total + size > quotas.doc_bytes_total:
        raise _refuse(author, "doc_bytes_total", quotas.doc_bytes_total, b_total, size, bytes_=True, now=now,
                      what="bytes of every document version you authored",
                      advice="keep documents smaller; the limit counts every version ever authored")


# ---- scheduled tasks -----------------------------------------------------------------

TASKS_USE = "SELECT COUNT(*) FROM engine_tasks WHERE created_by = ?"


def check_task(conn: sqlite3.Connection, quotas: Quotas, creator: str, *, shortest_gap: float, text_bytes: int,
               now: float | None = None) -> bool:
    """Refuse (QuotaExceeded) a scheduled task ``creator`` (an agent) may not add; returns
    whether the creator is an agent (its tasks are then bound to it: see qms.scheduled_tasks).
    Call inside the insert's transaction (a ``write_sync`` job)."""
    if conn.execute(IS_AGENT, (creator,)).fetchone() is None:
        return False
    now = time.time() if now is None else now
    n = conn.execute(TASKS_USE, (creator,)).fetchone()[0]
    if text_bytes > quotas.task_max_text:
        raise _refuse(creator, "task_max_text", quotas.task_max_text, 0, text_bytes, bytes_=True, now=now,
                      what="bytes of a task's text", advice="shorten the text or put details in a document")
    if shortest_gap < quotas.task_min_interval:
        limit = "task_min_interval"
        raise QuotaExceeded(
            f"{creator} may not schedule runs closer than {quotas.task_min_interval:g} s apart "
            f"(quota {limit}); this schedule runs every {shortest_gap:g} s: use a longer interval "
            "(the operator can change it in crowd.toml [quotas])",
            agent=creator, limit=limit,
            detail={"limit": limit, "max": quotas.task_min_interval, "asked": shortest_gap},
        )
    if n + 1 > quotas.tasks_max:
        raise _refuse(creator, "tasks_max", quotas.tasks_max, n, 1, now=now, what="scheduled tasks you created",
                      advice="remove one of your tasks first (remove_task)")
    return True


PERMISSIONS_USE = "SELECT COUNT(*) FROM permission_requests WHERE agent = ? AND state = 'pending'"


def check_permission_request(conn: sqlite3.Connection, quotas: Quotas, agent: str, now: float) -> None:
    """Refuse (QuotaExceeded) a permission request of ``agent`` beyond the requests it may
    have waiting at once. Call inside the insert's transaction (a ``write_sync`` job)."""
    n = conn.execute(PERMISSIONS_USE, (agent,)).fetchone()[0]
    if n + 1 > quotas.permission_requests_pending:
        raise _refuse(agent, "permission_requests_pending", quotas.permission_requests_pending, n, 1, now=now,
                      what="permission requests waiting at once",
                      advice="wait until the operator or your parent answers some")
