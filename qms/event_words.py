"""Events in words: one line per event ("lead checked in SOP-003 v4").

The one home of the event -> words rule, below everything that shows events (the
console's Activity view, the CLI). Words are plain text; callers neutralise control
characters when they print (``crowdtui.text_safety``).
"""

from __future__ import annotations

from typing import Any, Callable

MAX_PREVIEW = 60

Words = Callable[[str, str, dict[str, Any]], str]


def _q(text: Any, limit: int = MAX_PREVIEW) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _version(d: dict[str, Any]) -> str:
    return f" v{d['version']}" if d.get("version") is not None else ""


def _message(a: str, s: str, d: dict[str, Any]) -> str:
    preview = f': "{_q(d.get("preview"))}"' if d.get("preview") else ""
    return f"{a} {'broadcast to' if d.get('broadcast') else 'wrote to'} {s}{preview}"


def _routed(a: str, s: str, d: dict[str, Any]) -> str:
    who = ", ".join(map(str, d.get("assignees") or [])) or "nobody"
    again = " again after a rejection" if d.get("after_rejection") else ""
    return f"{a} routed {s}{_version(d)} for {d.get('kind', 'review')} to {who}{again}"


def _reviewed(a: str, s: str, d: dict[str, Any]) -> str:
    comment = f': "{_q(d.get("comment"))}"' if d.get("comment") else ""
    if d.get("outcome") == "recommend":
        return f"{a} reviewed {s}{_version(d)}: recommend{comment}"
    return f"{a} requested updates to {s}{_version(d)}{comment}"


def _with_comment(verb: str) -> Words:
    def words(a: str, s: str, d: dict[str, Any]) -> str:
        comment = f': "{_q(d.get("comment"))}"' if d.get("comment") else ""
        return f"{a} {verb} {s}{_version(d)}{comment}"
    return words


def _state(a: str, s: str, d: dict[str, Any]) -> str:
    why = f" ({d['reason']})" if d.get("reason") else ""
    return f"{s} went from {d.get('from', '?')} to {d.get('to', '?')}{why}"


def _agent_state(a: str, s: str, d: dict[str, Any]) -> str:
    return f"{s} is {d.get('state', '?')}" + (f" (was {d['previous']})" if d.get("previous") else "")


def _agent_status(a: str, s: str, d: dict[str, Any]) -> str:
    note = f": {_q(d.get('note'))}" if d.get("note") else ""
    return f"{s} says it is {d.get('status', '?')}{note}"


def _route(verb: str) -> Words:
    def words(a: str, s: str, d: dict[str, Any]) -> str:
        what = f" ({_q(d['match'])} -> {d['agent']})" if d.get("match") and d.get("agent") else ""
        return f"{a} {verb} route {s}{what}"
    return words


def _plain(verb: str, noun: str = "") -> Words:
    def words(a: str, s: str, d: dict[str, Any]) -> str:
        return f"{a} {verb} {noun}{s}".rstrip()
    return words


WORDS: dict[str, Words] = {
    "message.sent": _message,
    "message.read": lambda a, s, d: f"{a} read {d.get('count', 'some')} message(s)",
    "doc.created": lambda a, s, d: f'{a} created {s} "{_q(d.get("title"))}"',
    "doc.checkout": _plain("checked out"),
    "doc.checkin": lambda a, s, d: f"{a} checked in {s}{_version(d)}",
    "doc.checkout_cancelled": _plain("cancelled the checkout of"),
    "doc.lock_broken": lambda a, s, d: f"{a} broke {d.get('holder', 'the holder')}'s lock on {s}",
    "doc.lease_renewed": _plain("renewed the checkout of"),
    "doc.lease_released": lambda a, s, d: f"{s} was released from {d.get('holder', '?')} ({_q(d.get('reason'))})",
    "doc.routed": _routed,
    "doc.reviewed": _reviewed,
    "doc.approved": _with_comment("approved"),
    "doc.rejected": _with_comment("rejected"),
    "doc.state": _state,
    "doc.refused": lambda a, s, d: f"{a} was refused: {d.get('action', 'an action')} on {s}",
    "doc.task_reassigned": lambda a, s, d: (f"{a} moved {s}'s {d.get('kind', '')} task"
                                            f" from {d.get('from')} to {d.get('to')}"),
    "agent.state": _agent_state,
    "agent.status": _agent_status,
    "agent.registered": _plain("registered", "agent "),
    "agent.removed": _plain("removed", "agent "),
    "route.added": _route("added"),
    "route.pending": _route("proposed"),
    "route.moved": lambda a, s, d: f"{a} moved route {s}" + (f" to {d['position']}" if d.get("position") else ""),
    "route.removed": _route("removed"),
    "route.approved": _route("approved"),
    "route.rejected": _route("rejected"),
    "task.added": lambda a, s, d: f"{a} scheduled task {s}" + (f" ({d['schedule']})" if d.get("schedule") else ""),
    "task.paused": _plain("paused", "task "),
    "task.resumed": _plain("resumed", "task "),
    "task.removed": _plain("removed", "task "),
    "task.ran": lambda a, s, d: f"task {s} ran: {d.get('outcome', '?')}",
    "secret.created": _plain("set", "secret "),
    "secret.updated": _plain("changed", "secret "),
    "secret.removed": _plain("removed", "secret "),
    "channel.registered": _plain("registered", "channel "),
    "channel.deregistered": _plain("deregistered", "channel "),
    "onboard.held": lambda a, s, d: f"chat {s} is held for the operator",
    "onboard.approved": lambda a, s, d: f"{a} approved chat {s}" + (f" for {d['agent']}" if d.get("agent") else ""),
    "onboard.denied": _plain("denied", "chat "),
    "hub.call": lambda a, s, d: (f"{a} called {s}"
                                 + ("" if d.get("ok", True) else f" and it failed: {_q(d.get('error'))}")),
    "hub.denied": lambda a, s, d: f"{a} was refused {s}" + (f": {_q(d['reason'])}" if d.get("reason") else ""),
    "hub.delegated": lambda a, s, d: f"{a} delegated to {s}",
    "hub.escalated": lambda a, s, d: f"{a} escalated to {s}",
    "agent.stuck": lambda a, s, d: f"{s} looks stuck" + (f": {_q(d['reason'])}" if d.get("reason") else ""),
    "agent.unstuck": lambda a, s, d: f"{s} is moving again",
    "agent.restarted": lambda a, s, d: f"{a} restarted {s}",
    "agent.crash_loop": lambda a, s, d: f"{s} is crash-looping ({d.get('failures', '?')} failures)",
    "acp.session": lambda a, s, d: f"{s} {'started a new' if d.get('how') == 'new' else d.get('how', 'opened')} "
                                   f"ACP session",
    "acp.no_resume": lambda a, s, d: f"{s}'s earlier ACP session could not be resumed: {_q(d.get('reason'))}",
    "acp.turn": lambda a, s, d: (f"{s} finished a turn ({d.get('stop', '?')}"
                                 + (f", {d['tool_calls']} tool calls" if d.get("tool_calls") else "") + ")"
                                 + (f': "{_q(d.get("prompt"))}"' if d.get("prompt") else "")),
    "acp.tool_call": lambda a, s, d: f"{a}'s tool call {_q(s)}: {d.get('status', '?')}",
    "permission.requested": lambda a, s, d: (f"{s} asks permission for {d.get('tool', '?')}"
                                             f" (request {d.get('request', '?')}): {_q(d.get('title'))}"),
    "permission.answered": lambda a, s, d: (f"{a} answered {s}'s request {d.get('request', '?')}"
                                            f" for {d.get('tool', '?')}: {d.get('outcome', '?')}"),
    "permission.expired": lambda a, s, d: f"{s}'s request {d.get('request', '?')} for {d.get('tool', '?')} expired",
    "permission.cancelled": lambda a, s, d: (f"{s}'s request {d.get('request', '?')} for {d.get('tool', '?')}"
                                             " was cancelled"),
    "permission.refused": lambda a, s, d: f"{a} was refused an answer to request {s}: {_q(d.get('reason'))}",
    "permission.rule_added": lambda a, s, d: f"{a} made {d.get('outcome', '?')} the rule for {s}'s {d.get('tool', '?')}",
    "permission.rule_revoked": lambda a, s, d: f"{a} revoked the {d.get('outcome', '?')} rule for {s}'s {d.get('tool', '?')}",
    "engine.unreachable": lambda a, s, d: "the Docker engine is unreachable",
    "engine.reachable": lambda a, s, d: "the Docker engine is reachable again",
}


def event_words(kind: str, actor: str, subject: str, detail: dict[str, Any] | None) -> str:
    """One line saying what happened. Unknown kinds read "ACTOR KIND SUBJECT"."""
    d = detail if isinstance(detail, dict) else {}
    words = WORDS.get(str(kind))
    if words is not None:
        try:
            return words(str(actor), str(subject or ""), d)
        except (KeyError, TypeError, ValueError):
            pass  # a detail of an unexpected shape: say it plainly
    return f"{actor} {kind} {subject or ''}".rstrip()


def describe(event: Any) -> str:
    """``event_words`` of a ``qms.models.Event`` (or anything with its fields)."""
    return event_words(event.kind, event.actor, event.subject, event.detail)
