"""The hub's MCP server: the tools, plus a middleware that binds the caller and checks grants.

For every request the middleware finds the caller (the door the connection came in
on, or the bearer token of an HTTP request), filters ``tools/list`` to what the
caller may call, checks ``tools/call`` against the caller's grants, and records every
call as an event: ``hub.call`` (allowed; with ``ok`` and the error if it failed) or
``hub.denied`` (with the reason).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable, Mapping

from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import ListToolsResult

from crowdtui.hub.directory import Directory
from crowdtui.hub.eventlog import EventLog
from crowdtui.hub.grants import GrantRuleError
from crowdtui.hub.identity import CALLER, DOOR_AGENT, VIA
from crowdtui.hub.tools import DENIED, build_tools

log = logging.getLogger(__name__)

UNAUTHENTICATED = -32002
# Arguments are summarised in events, never stored whole.
_SUMMARY_CHARS = 120

HttpIdentity = Callable[[Any], Awaitable[str | None]]


_SAFE_SUBJECT = re.compile(r"[A-Za-z0-9_.*-]{1,64}")
_VALIDATION = re.compile(r"^(?P<field>[A-Za-z0-9_.]+)\n\s+(?P<msg>[^\[\n]+?)\s*\[type=", re.M)


def clear_tool_error(tool: str, text: str) -> str:
    """One line out of the SDK's argument-validation text (which spans lines and links)."""
    if "validation error" in text:
        problems = [f"{m['field']}: {m['msg'].strip()}" for m in _VALIDATION.finditer(text)]
        if problems:
            return f"wrong arguments for {tool}: {'; '.join(problems)}; see its input schema in tools/list"
    line = " ".join(text.split())
    return line or f"{tool} failed; check the arguments against tools/list"


def summarise(args: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (args or {}).items() if isinstance(args, Mapping) else ():
        text = v if isinstance(v, str) else repr(v)
        out[str(k)[:40]] = text if len(text) <= _SUMMARY_CHARS else text[:_SUMMARY_CHARS] + f"... ({len(text)} chars)"
    return out


class HubMiddleware:
    def __init__(self, store: Any, directory: Directory, http_identity: HttpIdentity | None = None):
        self.server = None  # set by build_server: the tools that exist are the server's
        self.store = store
        self.directory = directory
        self.http_identity = http_identity
        self.events = EventLog(store)

    def tool_names(self):
        """Names of the tools registered on the server now (others may add theirs later)."""
        if self.server is None:
            return None
        manager = getattr(self.server, "_tool_manager", None)
        if manager is None:
            return None
        return {t.name for t in manager.list_tools()}

    async def _who(self, ctx) -> str | None:
        name = DOOR_AGENT.get()
        if name:
            return name
        request = getattr(ctx, "request", None)
        if request is not None:
            scope = getattr(request, "scope", None) or {}
            if scope.get("crowd.agent"):
                return scope["crowd.agent"]
            if self.http_identity is not None:
                return await self.http_identity(request)
        return None

    async def _event(self, actor: str, kind: str, subject: str, detail: dict) -> None:
        if not _SAFE_SUBJECT.fullmatch(subject or ""):
            detail = {**detail, "name": repr(subject)[:80]}
            subject = "bad-tool-name"
        try:
            await self.events.append(actor, kind, subject, detail)
        except Exception:  # an audit write must never take the hub down
            log.exception("could not record %s for %s", kind, actor)

    async def __call__(self, ctx, call_next):
        method = getattr(ctx, "method", "")
        if method not in ("tools/list", "tools/call"):
            return await call_next(ctx)
        who = await self._who(ctx)
        if not who:
            raise MCPError(code=UNAUTHENTICATED, message="no agent identity on this connection; connect through your agent's socket or send your bearer token")
        info = await self.directory.info(who)
        if info is None:
            raise MCPError(code=DENIED, message=f"{who} is not a registered agent; ask the operator to add it to the roster")
        try:
            grants = info.grant_set
        except GrantRuleError as exc:
            reason = f"{who}'s grant rules are invalid ({exc}); ask the operator to fix its AGENT.md"
            await self._event(who, "hub.denied", str(method), {"reason": reason})
            raise MCPError(code=DENIED, message=reason) from exc
        via = "socket" if DOOR_AGENT.get() else "http"
        if method == "tools/list":
            result = await call_next(ctx)
            if isinstance(result, ListToolsResult):
                return ListToolsResult(tools=[t for t in result.tools if grants.visible(t.name)])
            if isinstance(result, dict) and "tools" in result:
                return {**result, "tools": [t for t in result["tools"] if grants.visible(t.get("name", ""))]}
            return result
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        tool = params.get("name")
        args = params.get("arguments")
        if not isinstance(tool, str):
            raise MCPError(code=-32602, message="tools/call needs a string `name`; call tools/list to see the tools you may call")
        if args is not None and not isinstance(args, Mapping):
            await self._event(who, "hub.denied", tool, {"reason": "arguments must be an object", "via": via})
            raise MCPError(code=-32602, message=f"arguments of {tool} must be a JSON object of named parameters")
        decision = grants.check(tool, args or {}, known=self.tool_names())
        if not decision.allowed:
            await self._event(who, "hub.denied", tool, {"reason": decision.reason, "via": via, "args": summarise(args)})
            raise MCPError(code=DENIED, message=decision.reason)
        token = CALLER.set(who)
        via_token = VIA.set(via)
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            await self._event(who, "hub.call", tool, {"ok": False, "error": exc.error.message[:300], "via": via, "grant": decision.reason, "args": summarise(args)})
            raise
        except Exception as exc:  # e.g. malformed params rejected before the tool ran
            await self._event(who, "hub.call", tool, {"ok": False, "error": " ".join(str(exc).split())[:300], "via": via, "grant": decision.reason, "args": summarise(args)})
            raise
        finally:
            CALLER.reset(token)
            VIA.reset(via_token)
        is_error = getattr(result, "is_error", None)
        content = getattr(result, "content", None)
        if isinstance(result, dict):
            is_error = result.get("isError", result.get("is_error"))
            content = result.get("content")
        if is_error:
            text = " ".join(
                (c.get("text", "") if isinstance(c, dict) else getattr(c, "text", "")) for c in content or ()
            )
            message = clear_tool_error(tool, text)
            await self._event(who, "hub.call", tool, {"ok": False, "error": message[:300], "via": via, "grant": decision.reason, "args": summarise(args)})
            code = -32602 if message.startswith("wrong arguments") else -32603
            raise MCPError(code=code, message=message)
        await self._event(who, "hub.call", tool, {"ok": True, "via": via, "grant": decision.reason, "args": summarise(args)})
        return result


def build_server(store: Any, directory: Directory, http_identity: HttpIdentity | None = None) -> MCPServer:
    """One MCP server for all doors of a workspace."""
    server = MCPServer(
        "crowd",
        instructions=(
            "The crowd hub: messages with other agents and the operator, the shared "
            "document workflow (create, checkout, checkin, route, review, approve), and "
            "coordination (delegate to your children, escalate to your parent, set your status)."
        ),
        log_level="WARNING",
    )
    build_tools(server, store, directory)
    middleware = HubMiddleware(store, directory, http_identity)
    middleware.server = server
    server.middleware.append(middleware)
    return server
