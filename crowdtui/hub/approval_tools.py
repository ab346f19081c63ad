"""Approval delegated down the tree: ``pending_permissions`` and ``answer_permission`` on the hub.

A parent agent answers the permission requests of its descendants (children, their
children...), never its own, a peer's or its parent's; and only for a tool key its own
grants allow (its tier default narrowed by its AGENT.md rules, matched against the key as
a tool name), so approval never gives more than the approver has. The operator (``crowdtui
mcp``) answers every request. A refusal is a ``hub.denied`` event with the reason; the
answer itself goes the one path every answer takes (:func:`crowdtui.hub.approvals.answer_permission`)
and is a ``permission.answered`` event.
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.shared.exceptions import MCPError

from crowdtui.hub.approvals import answer_permission as answer, pending_requests
from crowdtui.hub.directory import Directory
from crowdtui.hub.identity import VIA, caller
from crowdtui.hub.tools import DENIED, READ_ONLY, qms_errors
from qms import permissions
from qms.names import OPERATOR

Answer = Literal["allow_once", "allow_always", "reject_once", "reject_always"]
MAX_SHOWN_DIFF = 16 * 1024  # characters of a diff a listing carries (the request keeps it whole)
MAX_LISTED = 50  # requests a listing carries at most (the newest)


async def may_answer(directory: Directory, me: str, request: permissions.PermissionRequest) -> str | None:
    """Why ``me`` may not answer ``request`` (None: it may)."""
    if me == OPERATOR:
        return None
    if request.agent not in await directory.descendants(me):
        return (f"request {request.id} is {request.agent}'s, who is not below {me} in the roster; "
                "you may answer only your descendants' requests (see pending_permissions)")
    info = await directory.info(me)
    decision = info.grant_set.check(request.tool, {}, known=None) if info is not None else None
    if decision is None or not decision.allowed:
        why = decision.reason if decision is not None else f"{me} is not a registered agent"
        return (f"request {request.id} is for {request.tool!r}, which your own grants do not allow ({why}); "
                "it waits for the operator")
    return None


def shown(request: permissions.PermissionRequest, answerable: bool) -> dict[str, Any]:
    out = request.as_dict()
    if out["diff"] is not None and len(out["diff"]) > MAX_SHOWN_DIFF:
        out["diff"] = out["diff"][:MAX_SHOWN_DIFF] + f"\n… ({len(request.diff or '')} characters in all)"
    out["answerable"] = answerable
    return out


def add_approval_tools(server, store: Any, directory: Directory) -> None:
    """Register the approval tools on ``server`` (the hub's, or ``crowdtui mcp``'s)."""

    @server.tool(annotations=READ_ONLY)
    async def pending_permissions() -> dict[str, Any]:
        """The permission requests of my descendants that wait for an answer, oldest first (at
        most 50): id, agent, tool, title, diff, the options offered, and whether I may answer
        it (a tool my own grants allow)."""
        me = caller()
        with qms_errors():
            below = await directory.descendants(me)
            requests = await pending_requests(store, sorted(below), limit=MAX_LISTED)
        return {"requests": [shown(r, await may_answer(directory, me, r) is None) for r in requests]}

    @server.tool()
    async def answer_permission(request_id: int, outcome: Answer) -> dict[str, Any]:
        """Answer a permission request of one of my descendants: allow_once, allow_always,
        reject_once or reject_always ("always" is remembered for that agent and tool until
        revoked). Only for a tool my own grants allow; otherwise it waits for the operator."""
        me = caller()
        with qms_errors():
            request = await permissions.get_request(store, request_id)
        reason = await may_answer(directory, me, request)
        if reason is not None:
            await store.append_event(me, "hub.denied", "answer_permission", {
                "reason": reason, "via": VIA.get(), "args": {"request_id": request.id, "outcome": outcome}})
            raise MCPError(code=DENIED, message=reason)
        with qms_errors():
            done = await answer(store, request.id, outcome, me)
        return {"id": done.id, "agent": done.agent, "tool": done.tool, "outcome": done.outcome,
                "allowed": done.allowed, "answered_by": done.answered_by}
