"""Permission requests and "always" rules: the crew's one approval queue, as the store keeps it.

An agent's request (``permission_requests``) waits ``pending`` until it is answered
(``allow_once``, ``allow_always``, ``reject_once``, ``reject_always``), rejected as
``expired`` past its ``expires_at``, or ``cancelled`` (the agent stopped waiting). Each is
closed once: a second answer is refused (``Conflict``) and the refusal is an event.

An ``*_always`` answer is remembered per (agent, tool key) in ``permission_rules``: a
request that matches a rule is answered at once when it is opened (``answered_by`` is
``rule``), and so are the pending requests it matches when it is made. Rules are revoked
one by one.

Events, each in the change's own transaction (subject: the requesting agent; detail
``request``: the request's id): ``permission.requested``, ``permission.answered``,
``permission.expired``, ``permission.cancelled``, ``permission.refused``,
``permission.rule_added``, ``permission.rule_revoked``.

Everything here comes from agents: sizes are bounded, labels hold no control characters,
and an agent has at most ``[quotas] permission_requests_pending`` requests waiting at once
(beyond: ``QuotaExceeded`` and a ``quota.refused`` event).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from qms.errors import Conflict, InvalidInput, NotFound
from qms.event_rows import add_event
from qms.names import _CONTROL_BUT_LINES_RE, _CONTROL_RE, shown, validate_name, validate_text
from qms.quotas import check_permission_request
from qms.registry import no_such_agent

if TYPE_CHECKING:
    from qms.core import StoreCore as Store

ALLOW_ONCE, ALLOW_ALWAYS, REJECT_ONCE, REJECT_ALWAYS = "allow_once", "allow_always", "reject_once", "reject_always"
ANSWERS = (ALLOW_ONCE, ALLOW_ALWAYS, REJECT_ONCE, REJECT_ALWAYS)
EXPIRED, CANCELLED = "expired", "cancelled"
OUTCOMES = ANSWERS + (EXPIRED, CANCELLED)
ALLOWING = frozenset({ALLOW_ONCE, ALLOW_ALWAYS})
ALWAYS = frozenset({ALLOW_ALWAYS, REJECT_ALWAYS})
PENDING, ANSWERED = "pending", "answered"
STATES = (PENDING, ANSWERED, EXPIRED, CANCELLED)
#: the events that close a request (a waiter follows these)
CLOSING_KINDS = ("permission.answered", "permission.expired", "permission.cancelled")
RULE = "rule"  # answered_by of a request a rule answered

#: the keys of crowd.toml's [approvals] (operator_chats: read by dispatch, crowdtui.dispatch.approval_chat)
CONFIG_KEYS = ("timeout", "operator_chats")
DEFAULT_TIMEOUT = 600.0  # seconds a request waits unless crowd.toml [approvals] timeout says
MAX_TOOL_CHARS = 120
MAX_TITLE_CHARS = 300
MAX_DIFF_BYTES = 256 * 1024
MAX_DETAIL_BYTES = 32 * 1024
MAX_LIST = 1000

COLUMNS = ("id, agent, tool, title, detail, diff, options, state, outcome, answered_by, "
           "opened_at, expires_at, answered_at")


@dataclass(frozen=True)
class PermissionRequest:
    id: int
    agent: str
    tool: str
    title: str
    detail: dict[str, Any] = field(repr=False)
    diff: str | None = field(repr=False)
    options: tuple[str, ...]
    state: str
    outcome: str | None
    answered_by: str | None
    opened_at: float
    expires_at: float | None
    answered_at: float | None

    @property
    def allowed(self) -> bool:
        return self.outcome in ALLOWING

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "agent": self.agent, "tool": self.tool, "title": self.title, "detail": self.detail,
                "diff": self.diff, "options": list(self.options), "state": self.state, "outcome": self.outcome,
                "answered_by": self.answered_by, "opened_at": self.opened_at, "expires_at": self.expires_at,
                "answered_at": self.answered_at}


@dataclass(frozen=True)
class PermissionRule:
    agent: str
    tool: str
    outcome: str
    created_at: float
    created_by: str
    request_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "tool": self.tool, "outcome": self.outcome, "created_at": self.created_at,
                "created_by": self.created_by, "request_id": self.request_id}


def _request(r: sqlite3.Row) -> PermissionRequest:
    return PermissionRequest(r["id"], r["agent"], r["tool"], r["title"], json.loads(r["detail"]), r["diff"],
                             tuple(json.loads(r["options"])), r["state"], r["outcome"], r["answered_by"],
                             r["opened_at"], r["expires_at"], r["answered_at"])


def _rule(r: sqlite3.Row) -> PermissionRule:
    return PermissionRule(r["agent"], r["tool"], r["outcome"], r["created_at"], r["created_by"], r["request_id"])


# --- checks ---------------------------------------------------------------------------------

def validate_tool(tool: object) -> str:
    return validate_text(tool, "tool key", max_chars=MAX_TOOL_CHARS).strip()


def validate_outcome(outcome: object, allowed: Iterable[str] = ANSWERS) -> str:
    allowed = tuple(allowed)
    if outcome not in allowed:
        raise InvalidInput(f"outcome '{shown(outcome)}' is not one of {', '.join(allowed)}")
    return str(outcome)


def validate_request_id(request_id: object) -> int:
    if isinstance(request_id, bool) or not isinstance(request_id, int) or not 0 < request_id < 2**63:
        try:
            request_id = int(str(request_id).strip())
        except ValueError:
            raise InvalidInput(f"request id '{shown(request_id)}' is not a number; "
                               "see `crowdtui approvals ls` for the ids") from None
        if not 0 < request_id < 2**63:
            raise InvalidInput(f"request id {request_id} is out of range; see `crowdtui approvals ls` for the ids")
    return request_id


def _detail_json(detail: Mapping[str, Any] | None) -> str:
    if detail is None:
        return "{}"
    if not isinstance(detail, Mapping):
        raise InvalidInput(f"request detail must be an object, not {type(detail).__name__}")
    try:
        text = json.dumps(dict(detail), sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"request detail is not JSON ({exc}); pass plain data") from exc
    if len(text) > MAX_DETAIL_BYTES:  # kept as a note of its size: the queue stays readable
        text = json.dumps({"truncated": {"bytes": len(text), "keys": sorted(map(str, detail))[:32]}})
    return text


def _plain(text: str, *, lines: bool) -> str:
    """``text`` with control characters and escape sequences made visible (``\\x1b``)."""
    if lines:
        text = text.replace("\r\n", "\n")
    return (_CONTROL_BUT_LINES_RE if lines else _CONTROL_RE).sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _title(title: object) -> str:
    if not isinstance(title, str):
        raise InvalidInput(f"title must be text, not {type(title).__name__}")
    title = _plain(" ".join(title.split()), lines=False)
    if not title:
        raise InvalidInput("title is empty; say what the tool call does")
    return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 1] + "…"


def _diff(diff: object) -> str | None:
    """The diff kept as text with its control characters made visible; refused over MAX_DIFF_BYTES."""
    if diff is None:
        return None
    if not isinstance(diff, str):
        raise InvalidInput(f"diff must be text, not {type(diff).__name__}")
    if len(diff) > MAX_DIFF_BYTES or len(diff.encode("utf-8", "replace")) > MAX_DIFF_BYTES:
        raise InvalidInput(f"the diff is over {MAX_DIFF_BYTES // 1024} KiB; send a shorter one")
    return _plain(diff, lines=True)


def timeout_from_config(section: Mapping[str, Any] | None) -> float:
    """``[approvals] timeout`` of crowd.toml in seconds: a number or text like ``90s``,
    ``10m``, ``2h`` (default ``DEFAULT_TIMEOUT``)."""
    if not section:
        return DEFAULT_TIMEOUT
    if not isinstance(section, Mapping):
        raise InvalidInput("[approvals] in crowd.toml must be a table (timeout = \"10m\")")
    unknown = sorted(set(section) - set(CONFIG_KEYS))
    if unknown:
        raise InvalidInput(f"unknown [approvals] key(s) {', '.join(map(str, unknown))} in crowd.toml; "
                           f"known: {', '.join(CONFIG_KEYS)}")
    value = section.get("timeout", DEFAULT_TIMEOUT)
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text, unit = value.strip().lower(), 1.0
        if text[-1] in "smhd":
            text, unit = text[:-1].strip(), {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]
        try:
            seconds = float(text) * unit
        except ValueError:
            seconds = None
    if seconds is None or not 0 < seconds <= 7 * 86400:
        raise InvalidInput(f"[approvals] timeout must be a time between 1s and 7d like \"10m\", not {value!r}")
    return seconds


# --- writes ---------------------------------------------------------------------------------

def _close_in(conn: sqlite3.Connection, store: "Store", row: sqlite3.Row, state: str, outcome: str, by: str,
              now: float, extra: dict[str, Any] | None = None) -> PermissionRequest:
    done = _request(conn.execute(
        f"UPDATE permission_requests SET state = ?, outcome = ?, answered_by = ?, answered_at = ? "
        f"WHERE id = ? AND state = 'pending' RETURNING {COLUMNS}", (state, outcome, by, now, row["id"])).fetchone())
    kind = "permission.answered" if state == ANSWERED else f"permission.{state}"
    add_event(conn, store, by, kind, done.agent,
              {"request": done.id, "tool": done.tool, "outcome": outcome, **(extra or {})})
    return done


async def open_request(store: "Store", *, agent: str, tool: str, title: str, now: float, timeout: float | None,
                       detail: Mapping[str, Any] | None = None, diff: str | None = None,
                       options: Iterable[str] | None = None) -> tuple[PermissionRequest, int]:
    """Open a request for ``agent`` (registered); returns it and the id of the last event its
    opening wrote (follow the events after it for its answer). A matching "always" rule
    answers it at once (``answered_by`` ``rule``)."""
    validate_name(agent)
    tool = validate_tool(tool)
    title = _title(title)
    offered = tuple(dict.fromkeys(ANSWERS if options is None else options))
    if not offered:
        raise InvalidInput("a request offers no options; offer at least one of " + ", ".join(ANSWERS))
    for option in offered:
        validate_outcome(option)
    detail_text, diff = _detail_json(detail), _diff(diff)
    if timeout is not None and not timeout > 0:
        raise InvalidInput(f"timeout must be a positive number of seconds, not {timeout!r}")
    expires = None if timeout is None else now + timeout

    def tx(conn: sqlite3.Connection) -> tuple[PermissionRequest, int]:
        if conn.execute("SELECT 1 FROM agents WHERE name = ?", (agent,)).fetchone() is None:
            raise no_such_agent(agent)
        check_permission_request(conn, store.quotas, agent, now)
        row = conn.execute(
            f"INSERT INTO permission_requests (agent, tool, title, detail, diff, options, opened_at, expires_at) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}",
            (agent, tool, title, detail_text, diff, json.dumps(list(offered)), now, expires)).fetchone()
        last = add_event(conn, store, agent, "permission.requested", agent,
                         {"request": row["id"], "tool": tool, "title": title[:120], "diff": diff is not None})
        rule = conn.execute("SELECT outcome FROM permission_rules WHERE agent = ? AND tool = ?",
                            (agent, tool)).fetchone()
        if rule is None:
            return _request(row), last
        done = _close_in(conn, store, row, ANSWERED, rule["outcome"], RULE, now)
        return done, last

    return await store.write_sync(tx)


def answer_tx(conn: sqlite3.Connection, store: "Store", request_id: int, outcome: str, *, actor: str, now: float,
              extra: dict[str, Any] | None = None) -> PermissionRequest | str:
    """Answer a pending request inside an open transaction (a ``write_sync`` job, or dispatch's
    routing transaction); returns it, or the refusal as one line (the caller records it).
    ``extra`` goes into the ``permission.answered`` event (e.g. the chat it came from)."""
    row = conn.execute(f"SELECT {COLUMNS} FROM permission_requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        return f"no permission request {request_id}; see `crowdtui approvals ls`"
    if row["state"] != PENDING:
        return (f"permission request {request_id} is {row['state']} already "
                f"({row['outcome']} by {row['answered_by']}); nothing changed")
    if outcome not in json.loads(row["options"]):
        return (f"{row['agent']} does not offer {outcome} for request {request_id}; "
                f"answer one of {', '.join(json.loads(row['options']))}")
    done = _close_in(conn, store, row, ANSWERED, outcome, actor, now, extra)
    if outcome in ALWAYS:
        conn.execute(
            "INSERT INTO permission_rules (agent, tool, outcome, created_at, created_by, request_id) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(agent, tool) DO UPDATE SET outcome = excluded.outcome, "
            "created_at = excluded.created_at, created_by = excluded.created_by, "
            "request_id = excluded.request_id", (done.agent, done.tool, outcome, now, actor, done.id))
        add_event(conn, store, actor, "permission.rule_added", done.agent,
                  {"request": done.id, "tool": done.tool, "outcome": outcome})
        for other in conn.execute(f"SELECT {COLUMNS} FROM permission_requests WHERE agent = ? AND tool = ? "
                                  "AND state = 'pending'", (done.agent, done.tool)).fetchall():
            _close_in(conn, store, other, ANSWERED, outcome, RULE, now)
    return done


def refusal_error(reason: str) -> Exception:
    """The error a refused answer raises: NotFound, Conflict (closed already) or InvalidInput."""
    if reason.startswith("no permission request"):
        return NotFound(reason)
    return Conflict(reason) if " already " in reason else InvalidInput(reason)


def refused_tx(conn: sqlite3.Connection, store: "Store", request_id: int, outcome: str, *, actor: str,
               reason: str, extra: dict[str, Any] | None = None) -> None:
    """Record a refused answer (``permission.refused``) inside an open transaction."""
    add_event(conn, store, actor, "permission.refused", str(request_id),
              {"request": request_id, "outcome": outcome, "reason": reason, **(extra or {})})


async def answer_request(store: "Store", request_id: int, outcome: str, *, actor: str,
                         now: float) -> PermissionRequest:
    """Answer a pending request. An ``*_always`` answer also makes the rule for its agent and
    tool (and answers that agent's other pending requests for the tool). A request that is
    not pending, or an outcome it does not offer, is refused and the refusal is an event;
    an unknown id is NotFound."""
    request_id = validate_request_id(request_id)
    validate_outcome(outcome)

    def tx(conn: sqlite3.Connection) -> PermissionRequest | str:
        result = answer_tx(conn, store, request_id, outcome, actor=actor, now=now)
        if isinstance(result, str) and not result.startswith("no permission request"):
            refused_tx(conn, store, request_id, outcome, actor=actor, reason=result)
        return result

    result = await store.write_sync(tx)
    if isinstance(result, str):
        raise refusal_error(result)
    return result


async def close_request(store: "Store", request_id: int, state: str, *, actor: str, now: float,
                        reason: str | None = None) -> PermissionRequest | None:
    """Close a pending request as ``expired`` or ``cancelled``; None when it was not pending."""
    validate_outcome(state, (EXPIRED, CANCELLED))

    def tx(conn: sqlite3.Connection) -> PermissionRequest | None:
        row = conn.execute(f"SELECT {COLUMNS} FROM permission_requests WHERE id = ? AND state = 'pending'",
                           (request_id,)).fetchone()
        if row is None:
            return None
        return _close_in(conn, store, row, state, state, actor, now, {"reason": reason} if reason else None)

    return await store.write_sync(tx)


async def expire_overdue(store: "Store", *, now: float, actor: str) -> list[PermissionRequest]:
    """Close every pending request past its ``expires_at`` (its waiter may be gone) as expired."""
    if not await store.query("SELECT 1 FROM permission_requests WHERE state = 'pending' AND expires_at <= ? LIMIT 1",
                             (now,)):
        return []

    def tx(conn: sqlite3.Connection) -> list[PermissionRequest]:
        rows = conn.execute(f"SELECT {COLUMNS} FROM permission_requests WHERE state = 'pending' AND expires_at <= ? "
                            f"ORDER BY id LIMIT {MAX_LIST}", (now,)).fetchall()
        return [_close_in(conn, store, r, EXPIRED, EXPIRED, actor, now, {"reason": "nobody answered in time"})
                for r in rows]

    return await store.write_sync(tx)


async def revoke_rule(store: "Store", agent: str, tool: str, *, actor: str) -> PermissionRule:
    """Forget the "always" rule of ``agent`` for ``tool``; NotFound when there is none."""
    validate_name(agent)
    tool = validate_tool(tool)

    def tx(conn: sqlite3.Connection) -> PermissionRule:
        row = conn.execute("DELETE FROM permission_rules WHERE agent = ? AND tool = ? RETURNING *",
                           (agent, tool)).fetchone()
        if row is None:
            raise NotFound(f"{agent} has no \"always\" rule for {tool!r}; see `crowdtui approvals rules`")
        rule = _rule(row)
        add_event(conn, store, actor, "permission.rule_revoked", agent, {"tool": tool, "outcome": rule.outcome})
        return rule

    return await store.write_sync(tx)


# --- reads ----------------------------------------------------------------------------------

async def get_request(store: "Store", request_id: int) -> PermissionRequest:
    request_id = validate_request_id(request_id)
    rows = await store.query(f"SELECT {COLUMNS} FROM permission_requests WHERE id = ?", (request_id,))
    if not rows:
        raise NotFound(f"no permission request {request_id}; see `crowdtui approvals ls`")
    return _request(rows[0])


async def list_requests(store: "Store", *, state: str | None = PENDING, agents: Iterable[str] | None = None,
                        limit: int = MAX_LIST) -> list[PermissionRequest]:
    """Requests oldest first (``state`` None: every state, newest ``limit``), of ``agents`` only if given."""
    where, params = [], []
    if state is not None:
        validate_outcome(state, STATES)
        where.append("state = ?")
        params.append(state)
    if agents is not None:
        names = list(agents)
        if not names:
            return []
        where.append(f"agent IN ({', '.join('?' * len(names))})")
        params.extend(names)
    sql = f"SELECT {COLUMNS} FROM permission_requests {'WHERE ' + ' AND '.join(where) if where else ''}"
    limit = max(1, min(int(limit), MAX_LIST))
    rows = await store.query(f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {limit}) ORDER BY id", params)
    return [_request(r) for r in rows]


def pending_tx(conn: sqlite3.Connection, now: float, limit: int = MAX_LIST) -> list[PermissionRequest]:
    """The pending requests not yet past their time, oldest first, inside an open transaction."""
    return [_request(r) for r in conn.execute(
        f"SELECT {COLUMNS} FROM permission_requests WHERE state = 'pending' AND (expires_at IS NULL OR expires_at > ?) "
        f"ORDER BY id LIMIT ?", (now, max(1, min(int(limit), MAX_LIST)))).fetchall()]


async def pending_count(store: "Store") -> int:
    return int((await store.query("SELECT count(*) FROM permission_requests WHERE state = 'pending'"))[0][0])


async def list_rules(store: "Store", agent: str | None = None) -> list[PermissionRule]:
    if agent is None:
        rows = await store.query("SELECT * FROM permission_rules ORDER BY agent, tool")
    else:
        rows = await store.query("SELECT * FROM permission_rules WHERE agent = ? ORDER BY tool", (validate_name(agent),))
    return [_rule(r) for r in rows]
