"""The hub's MCP tools: the qms API acting as the caller, plus coordination.

Every tool reads the caller from ``identity.caller()`` (bound to the door or token by
the middleware in ``crowdtui.hub.server``); no argument names who is calling.
Errors are ``MCPError``s whose message says what was wrong and what to do next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import time
from contextlib import contextmanager
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations

from qms.doc_rows import DEFAULT_LEASE_SECONDS

from crowdtui.hub.directory import Directory
from crowdtui.hub.identity import VIA, caller
from qms.names import OPERATOR

# JSON-RPC error codes the hub uses (server-defined range -32000..-32099).
DENIED = -32001  # the caller may not do this
CONFLICT = -32009  # state does not allow it now (lock held, wrong workflow state)
STORE_UNAVAILABLE = -32010  # the store cannot take writes (disk full, read-only): retry later
INVALID_PARAMS = -32602

# Tools that change nothing say so (MCP's readOnlyHint): clients see it in tools/list, and
# the hub records their calls once, without holding the answer (crowdtui.hub.server).
READ_ONLY = ToolAnnotations(read_only_hint=True)

MAX_WAIT = 60.0  # seconds get_messages may hold a call open
WAIT_POLL = 0.25  # how often a waiting get_messages looks again (a cheap read)

Priority = Literal["high", "normal", "low"]
RouteKind = Literal["review", "approval"]
ReviewOutcome = Literal["recommend", "request-updates"]
StatusState = Literal["working", "waiting", "done", "blocked"]


def plain(obj: Any) -> Any:
    """qms dataclasses and values -> JSON-ready data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


@contextmanager
def qms_errors():
    """Turn the store's one-line errors into MCP errors with the same text."""
    from qms import errors

    try:
        yield
    except MCPError:
        raise
    except errors.PermissionDenied as exc:
        raise MCPError(code=DENIED, message=str(exc)) from exc
    except (errors.Conflict, errors.IllegalTransition) as exc:
        raise MCPError(code=CONFLICT, message=str(exc)) from exc
    except errors.StoreUnavailable as exc:  # disk full, read-only: nothing was done; retry later
        raise MCPError(code=STORE_UNAVAILABLE, message=str(exc)) from exc
    except errors.QmsError as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from exc


def build_tools(server: MCPServer, store: Any, directory: Directory) -> None:
    """Register every hub tool on ``server``."""

    # ---- messaging -------------------------------------------------------------

    @server.tool()
    async def send_message(
        to: str, body: str, priority: Priority = "normal", thread: str | None = None
    ) -> dict[str, Any]:
        """Send a message to an agent (or "operator"); to="*" broadcasts to every agent."""
        me = caller()
        with qms_errors():
            msgs = await store.send_message(me, to, body, priority=priority, thread=thread)
        return {"sent": len(msgs), "ids": [m.id for m in msgs], "recipients": [m.recipient for m in msgs]}

    @server.tool(annotations=READ_ONLY)
    async def get_messages(unread_only: bool = True, limit: int = 50, wait_seconds: float = 0) -> dict[str, Any]:
        """Read my inbox: high priority first, then oldest first. Does not mark anything read.

        wait_seconds (up to 60): when nothing is there yet, wait that long for something
        to arrive instead of asking again and again.
        """
        me = caller()
        limit = max(1, min(int(limit), 500))
        deadline = time.monotonic() + max(0.0, min(float(wait_seconds), MAX_WAIT))
        while True:
            with qms_errors():
                msgs = await store.inbox(me, unread_only=unread_only, limit=limit)
            if msgs or time.monotonic() >= deadline:
                return {"messages": plain(msgs)}
            await asyncio.sleep(WAIT_POLL)

    @server.tool()
    async def mark_messages_read(ids: list[int]) -> dict[str, Any]:
        """Mark messages of my inbox read (ids from get_messages)."""
        me = caller()
        with qms_errors():
            n = await store.mark_read(me, ids)
        return {"marked": n}

    @server.tool(annotations=READ_ONLY)
    async def discover_agents() -> dict[str, Any]:
        """Who is in the crew: name, description, tier, parent, state, status and skills."""
        with qms_errors():
            agents = await store.list_agents()
        out = [{"name": OPERATOR, "description": "the human operator", "tier": 0, "parent": None,
                "state": None, "status": None, "skills": []}]
        for a in agents:
            info = await directory.info(a.name)
            out.append({
                "name": a.name, "description": a.description, "tier": a.tier, "parent": a.parent,
                "state": a.state, "status": a.status, "status_note": a.status_note,
                "skills": list(info.skills) if info else [],
            })
        return {"agents": out}

    # ---- documents -------------------------------------------------------------

    @server.tool()
    async def create_document(doc_type: str, title: str, content: str = "") -> dict[str, Any]:
        """Create a document (doc_type e.g. SOP, SPEC, CR, TP) in DRAFT, authored by me."""
        with qms_errors():
            return plain(await store.create_document(caller(), doc_type, title, content))

    @server.tool(annotations=READ_ONLY)
    async def read_document(doc_id: str, version: int | None = None) -> dict[str, Any]:
        """Read a document (the latest version, or the version given)."""
        with qms_errors():
            return plain(await store.get_document(doc_id, version))

    @server.tool(annotations=READ_ONLY)
    async def list_documents(state: str | None = None, doc_type: str | None = None) -> dict[str, Any]:
        """List documents, optionally only those in a state or of a type."""
        with qms_errors():
            docs = await store.list_documents(state=state, doc_type=doc_type)
        return {"documents": [{k: v for k, v in plain(d).items() if k != "content"} for d in docs]}

    @server.tool()
    async def checkout_document(doc_id: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> dict[str, Any]:
        """Check a document out to me (a lease of lease_seconds, 60 to 86400, default 3600) so
        I may check in a new version. Renew it with renew_checkout while I work; if my
        container stops or crashes the lease is released after a short grace period."""
        with qms_errors():
            return plain(await store.checkout(doc_id, caller(), lease_seconds=lease_seconds))

    @server.tool()
    async def renew_checkout(doc_id: str, lease_seconds: float | None = None) -> dict[str, Any]:
        """Extend my checkout of a document: it runs lease_seconds from now (default: the
        length I chose at checkout)."""
        with qms_errors():
            doc = await store.renew_checkout(doc_id, caller(), lease_seconds=lease_seconds)
        return {"doc_id": doc.id, "holder": doc.holder, "lease_expires_at": doc.lease_expires_at}

    @server.tool()
    async def checkin_document(doc_id: str, content: str, note: str | None = None) -> dict[str, Any]:
        """Check in a new version of a document I hold; releases my checkout."""
        with qms_errors():
            return plain(await store.checkin(doc_id, caller(), content, note=note))

    @server.tool()
    async def cancel_checkout(doc_id: str) -> dict[str, Any]:
        """Give up my checkout of a document without a new version."""
        with qms_errors():
            await store.cancel_checkout(doc_id, caller())
        return {"doc_id": doc_id, "cancelled": True}

    @server.tool()
    async def route_document(doc_id: str, kind: RouteKind, assignees: list[str]) -> dict[str, Any]:
        """Route a document for review or approval; each assignee gets a task and a message.

        Only the document's author or the operator routes it. Whoever checked in the current
        version may not be an assignee, nor may a reviewer of it be an approver; a document
        the operator owns needs "operator" among the approvers.
        """
        with qms_errors():
            await store.route(doc_id, caller(), kind, list(assignees))
            doc = await store.get_document(doc_id)
        return {"doc_id": doc_id, "state": doc.state, "assignees": list(assignees)}

    @server.tool()
    async def review_document(doc_id: str, outcome: ReviewOutcome, comment: str) -> dict[str, Any]:
        """Review a document routed to me: recommend or request-updates, with a comment
        (not a version I checked in, nor one I approved)."""
        with qms_errors():
            await store.review(doc_id, caller(), outcome, comment)
            doc = await store.get_document(doc_id)
        return {"doc_id": doc_id, "state": doc.state, "outcome": outcome}

    @server.tool()
    async def approve_document(doc_id: str, comment: str | None = None) -> dict[str, Any]:
        """Approve a document routed to me for approval (not a version I checked in or reviewed)."""
        with qms_errors():
            await store.approve(doc_id, caller(), comment)
            doc = await store.get_document(doc_id)
        return {"doc_id": doc_id, "state": doc.state}

    @server.tool()
    async def reject_document(doc_id: str, comment: str) -> dict[str, Any]:
        """Reject a document routed to me for approval; it goes back to review."""
        with qms_errors():
            await store.reject(doc_id, caller(), comment)
            doc = await store.get_document(doc_id)
        return {"doc_id": doc_id, "state": doc.state}

    @server.tool()
    async def release_document(doc_id: str) -> dict[str, Any]:
        """Release a pre-approved executable document for execution."""
        with qms_errors():
            await store.release(doc_id, caller())
            doc = await store.get_document(doc_id)
        return {"doc_id": doc_id, "state": doc.state}

    @server.tool()
    async def close_document(doc_id: str) -> dict[str, Any]:
        """Close a post-approved executable document."""
        with qms_errors():
            await store.close_document(doc_id, caller())
            doc = await store.get_document(doc_id)
        return {"doc_id": doc_id, "state": doc.state}

    @server.tool(annotations=READ_ONLY)
    async def document_history(doc_id: str) -> dict[str, Any]:
        """Every event of a document, oldest first."""
        with qms_errors():
            return {"doc_id": doc_id, "events": plain(await store.history(doc_id))}

    @server.tool(annotations=READ_ONLY)
    async def my_tasks() -> dict[str, Any]:
        """What waits on me: reviews and approvals routed to me."""
        with qms_errors():
            return {"tasks": plain(await store.pending_tasks(caller()))}

    # ---- coordination ----------------------------------------------------------

    @server.tool()
    async def delegate(child: str, prompt: str) -> dict[str, Any]:
        """Hand work to one of my children (a high-priority message in its inbox)."""
        me = caller()
        info = await directory.info(me)
        children = info.children if info else ()
        if child not in children:
            allowed = ", ".join(children) if children else "nobody (you have no children)"
            raise MCPError(code=DENIED, message=f"{child!r} is not a child of {me}; you may delegate only to {allowed}")
        with qms_errors():
            msgs = await store.send_message(me, child, prompt, priority="high", thread=f"delegation/{me}")
            await store.append_event(me, "hub.delegated", child, {"message_id": msgs[0].id})
        return {"delegated_to": child, "message_id": msgs[0].id}

    @server.tool()
    async def escalate(prompt: str, to: str | None = None) -> dict[str, Any]:
        """Raise something with my parent (the operator for top-level agents)."""
        me = caller()
        info = await directory.info(me)
        parent = (info.parent if info else None) or OPERATOR
        if to is not None and to != parent:
            raise MCPError(code=DENIED, message=f"{me} may escalate only to its parent {parent}, not {to!r}; drop `to` or ask {parent} to pass it on")
        with qms_errors():
            msgs = await store.send_message(me, parent, prompt, priority="high", thread=f"escalation/{me}")
            await store.append_event(me, "hub.escalated", parent, {"message_id": msgs[0].id})
        return {"escalated_to": parent, "message_id": msgs[0].id}

    descendants = directory.descendants

    @server.tool(annotations=READ_ONLY)
    async def observe(agent: str, limit: int = 20) -> dict[str, Any]:
        """A read-only look at one of my descendants (children, their children...): its
        status and latest inbox (nothing is marked read)."""
        me = caller()
        limit = max(1, min(int(limit), 200))
        if me != OPERATOR and agent not in await descendants(me):
            below = sorted(await descendants(me))
            allowed = ", ".join(below) if below else "nobody (you have no children)"
            reason = f"{agent!r} is not below {me} in the roster; you may observe only your descendants: {allowed}"
            await store.append_event(me, "hub.denied", "observe", {"reason": reason, "via": VIA.get(), "args": {"agent": str(agent)[:80]}})
            raise MCPError(code=DENIED, message=reason)
        with qms_errors():
            a = await store.get_agent(agent)
            if a is None:
                raise MCPError(code=INVALID_PARAMS, message=f"no agent named {agent!r}; call discover_agents to see who exists")
            msgs = await store.inbox(agent, unread_only=False, limit=limit)
        return {"agent": plain(a), "messages": plain(msgs)}

    @server.tool()
    async def set_status(state: StatusState, note: str = "") -> dict[str, Any]:
        """Tell the operator what I am doing: working, waiting, done or blocked, with a note."""
        me = caller()
        with qms_errors():
            a = await store.set_agent_status(me, state, note, actor=me)
        return {"name": me, "status": a.status, "note": a.status_note}
