"""The hub's MCP server: the tools, plus a middleware that binds the caller and checks grants.

For every request the middleware finds the caller (the door the connection came in
on, or the bearer token of an HTTP request) and filters ``tools/list`` to what the
caller may call. A ``tools/call`` goes through, in order:

1. the tool name: unknown, or none of its calls granted -> refused;
2. the argument keys: a key the tool has no parameter for -> refused (the SDK would
   drop it silently);
3. the tool's own argument model (the SDK's ``fn_metadata``): wrong types -> refused
   with the SDK's "wrong arguments" message;
4. the grants, checked against the validated values (defaults filled in, JSON strings
   parsed, ``"01"`` read as ``1``), which are then what the tool receives.

Every refusal is a ``hub.denied`` event (with the reason). An allowed call that can
change something is recorded as ``hub.calling`` BEFORE it runs and is refused if that
record cannot be written, so no call has an effect without an audit record, even when
the hub dies or the client cancels mid-call; when it ends, ``hub.call`` records the
outcome (``ok`` and the error) before the answer goes back. A read-only call (a tool
registered with ``readOnlyHint``: ``tools.READ_ONLY``) has no effect to guard: it is
recorded once, ``hub.call`` with its outcome, and that record and refusals' are written
in groups without holding the answer (``crowdtui.hub.eventlog``: at most 100 ms of them
can be lost to a crash).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Awaitable, Callable, Mapping, NoReturn

from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import ListToolsResult
from pydantic import ValidationError

from crowdtui.grant_rules import GrantRuleError
from crowdtui.hub.directory import Directory
from crowdtui.hub.eventlog import EventLog
from crowdtui.hub.grants import Decision
from crowdtui.hub.identity import CALLER, DOOR_AGENT, DOOR_VIA, VIA
from crowdtui.hub.tools import DENIED, INVALID_PARAMS, build_tools
from qms.names import shown

log = logging.getLogger(__name__)

UNAUTHENTICATED = -32002
AUDIT_FAILED = -32603  # internal error: the hub could not check or record the call
# Arguments are summarised in events, never stored whole: at most this many keys, each
# name and value cut to these lengths (the store caps a whole event detail at 64 KiB too).
_SUMMARY_KEYS = 32
_SUMMARY_KEY_CHARS = 40
_SUMMARY_CHARS = 120
_SHOWN_UNKNOWN_KEYS = 5

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
    """Arguments as an event keeps them: the first keys, each name and value cut short,
    and how many more keys there were."""
    out: dict[str, Any] = {}
    items = list(args.items()) if isinstance(args, Mapping) else []
    for k, v in items[:_SUMMARY_KEYS]:
        text = v if isinstance(v, str) else repr(v)
        key = str(k)
        if len(key) > _SUMMARY_KEY_CHARS:
            key = key[:_SUMMARY_KEY_CHARS] + f"... ({len(key)} chars)"
        out[key] = text if len(text) <= _SUMMARY_CHARS else text[:_SUMMARY_CHARS] + f"... ({len(text)} chars)"
    if len(items) > _SUMMARY_KEYS:
        out["..."] = f"{len(items) - _SUMMARY_KEYS} more keys ({len(items)} in all)"
    return out


def _parameters(spec: Any) -> set[str]:
    """The argument keys a registered tool accepts (field names and aliases)."""
    fields = spec.fn_metadata.arg_model.model_fields
    return set(fields) | {f.alias for f in fields.values() if f.alias}


def _unknown_keys_reason(tool: str, unknown: list[str], accepted: set[str]) -> str:
    named = ", ".join(repr(shown(k, 40)) for k in unknown[:_SHOWN_UNKNOWN_KEYS])
    more = f" and {len(unknown) - _SHOWN_UNKNOWN_KEYS} more" if len(unknown) > _SHOWN_UNKNOWN_KEYS else ""
    params = ", ".join(sorted(accepted)) or "none"
    return (f"{tool} has no parameter {named}{more}; its parameters are: {params}. "
            "Send only those (see its input schema in tools/list)")


class HubMiddleware:
    def __init__(self, store: Any, directory: Directory, http_identity: HttpIdentity | None = None,
                 events: EventLog | None = None):
        self.server = None  # set by build_server: the tools that exist are the server's
        self.store = store
        self.directory = directory
        self.http_identity = http_identity
        self.events = events if events is not None else EventLog(store)
        self._params: dict[str, tuple[Any, set[str]]] = {}  # tool name -> (its registration, its keys)

    def _manager(self):
        return getattr(self.server, "_tool_manager", None) if self.server is not None else None

    def tool_names(self):
        """Names of the tools registered on the server now (others may add theirs later)."""
        manager = self._manager()
        if manager is None:
            return None
        return manager._tools.keys()  # a live view: no copy of 29 names for every call

    def read_only(self, name: str) -> bool:
        """Whether a tool is registered as read-only (its ``readOnlyHint``)."""
        spec = self.tool_spec(name)
        annotations = getattr(spec, "annotations", None) if spec is not None else None
        return bool(annotations is not None and annotations.read_only_hint)

    def _accepted(self, name: str, spec: Any) -> set[str]:
        """The argument keys of a registered tool, found once per registration."""
        known = self._params.get(name)
        if known is None or known[0] is not spec:
            known = (spec, _parameters(spec))
            self._params[name] = known
        return known[1]

    def tool_spec(self, name: str):
        """The SDK's registration of a tool (its argument model), or None."""
        manager = self._manager()
        return manager.get_tool(name) if manager is not None else None

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

    async def _event(self, actor: str, kind: str, subject: str, detail: dict, required: bool = False,
                     durable: bool = True) -> None:
        """Record an event. ``required``: a failure is raised (the caller refuses the call);
        otherwise it is logged, since the call it describes is refused or over already.
        ``durable=False``: written in the next group without waiting (read-only calls and
        refusals; see ``EventLog.note``)."""
        if not _SAFE_SUBJECT.fullmatch(subject or ""):
            detail = {**detail, "name": repr(subject)[:80]}
            subject = "bad-tool-name"
        try:
            if durable:
                await self.events.append(actor, kind, subject, detail)
            else:
                await self.events.note(actor, kind, subject, detail)
        except Exception:  # an audit write must never take the hub down
            log.exception("could not record %s for %s", kind, actor)
            if required:
                raise

    async def _refuse(self, who: str, tool: str, reason: str, via: str, args: Any, code: int = DENIED) -> NoReturn:
        """Record the refusal (hub.denied) and raise it to the caller."""
        await self._event(who, "hub.denied", tool, {"reason": reason, "via": via, "args": summarise(args)},
                          durable=False)
        raise MCPError(code=code, message=reason)

    async def _admit(
        self, who: str, grants: Any, tool: str, args: Mapping[str, Any], via: str,
    ) -> tuple[Decision, dict]:
        """Check a call (name, keys, types, grants); return the grant decision and the
        validated arguments the tool will receive, or raise the refusal (recorded)."""
        known = self.tool_names()
        refusal = grants.refuse_name(tool, known)
        spec = self.tool_spec(tool) if refusal is None else None
        if refusal is None and spec is None and known is not None:
            refusal = Decision(False, f"unknown tool {tool!r}; call tools/list to see the tools you may call")
        if refusal is not None:
            await self._refuse(who, tool, refusal.reason, via, args)
        if spec is None:  # no server to ask (a bare middleware): the raw arguments decide
            decision = grants.check(tool, args, known=known)
            if not decision.allowed:
                await self._refuse(who, tool, decision.reason, via, args)
            return decision, dict(args)
        accepted = self._accepted(tool, spec)
        unknown = [str(k) for k in args if k not in accepted]
        if unknown:
            await self._refuse(who, tool, _unknown_keys_reason(tool, unknown, accepted), via, args, INVALID_PARAMS)
        try:
            values = spec.fn_metadata.validate_arguments(dict(args))
        except ValidationError as exc:
            message = clear_tool_error(tool, f"Error executing tool {tool}: {exc}")
            await self._refuse(who, tool, message[:1000], via, args, INVALID_PARAMS)
        except Exception as exc:  # a validator that crashed: say so without its text
            log.warning("validating arguments of %s raised %r", tool, exc)
            await self._refuse(who, tool, f"arguments of {tool} could not be read; check them against tools/list",
                               via, args, INVALID_PARAMS)
        decision = grants.check(tool, values, known=known)
        if not decision.allowed:
            await self._refuse(who, tool, decision.reason, via, args)
        return decision, values

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
            await self._event(who, "hub.denied", str(method), {"reason": reason}, durable=False)
            raise MCPError(code=DENIED, message=reason) from exc
        via = DOOR_VIA.get() or ("socket" if DOOR_AGENT.get() else "http")
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
            await self._event(who, "hub.denied", tool, {"reason": "arguments must be an object", "via": via},
                              durable=False)
            raise MCPError(code=-32602, message=f"arguments of {tool} must be a JSON object of named parameters")
        try:
            decision, values = await self._admit(who, grants, tool, args or {}, via)
        except MCPError:
            raise
        except Exception:  # a check that crashed refuses the call, on the record
            log.exception("checking a call of %s by %s failed", tool, who)
            await self._refuse(who, tool, f"the hub could not check this call of {tool}; tell the operator",
                               via, args, AUDIT_FAILED)
        read_only = self.read_only(tool)
        try:  # no effect without an audit record: a call that can change something runs only once this is stored
            if not read_only:
                await self._event(who, "hub.calling", tool, {"via": via, "grant": decision.reason,
                                                             "args": summarise(args)}, required=True)
        except Exception as exc:
            from qms.errors import StoreUnavailable

            reason = ("the hub could not write the audit record of this call, so it did not run it; "
                      "try again later, and tell the operator if it keeps failing")
            if isinstance(exc, StoreUnavailable):
                reason = f"{exc}; the hub did not run this call (no audit record could be written)"
            await self._event(who, "hub.denied", tool, {"reason": reason, "via": via}, durable=False)  # likely fails too
            raise MCPError(code=AUDIT_FAILED, message=reason) from exc
        ctx = copy.copy(ctx)  # (dataclasses.replace walks the fields on every call: 5 times dearer)
        ctx.params = {**params, "arguments": values}  # what the grants saw
        summary = summarise(args)

        async def outcome(error: str | None) -> None:
            detail = {"ok": error is None, "via": via, "grant": decision.reason, "args": summary}
            if error is not None:
                detail["error"] = error[:300]
            await self._event(who, "hub.call", tool, detail, durable=not read_only)

        token = CALLER.set(who)
        via_token = VIA.set(via)
        try:
            result = await call_next(ctx)
        except MCPError as exc:
            await outcome(exc.error.message)
            raise
        except Exception as exc:  # e.g. malformed params rejected before the tool ran
            await outcome(" ".join(str(exc).split()))
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
            await outcome(message)
            code = -32602 if message.startswith("wrong arguments") else -32603
            raise MCPError(code=code, message=message)
        await outcome(None)
        return result


def build_server(store: Any, directory: Directory, http_identity: HttpIdentity | None = None,
                 events: EventLog | None = None) -> MCPServer:
    """One MCP server for all doors of a workspace; its audit records go through ``events``
    (the hub drains it when it stops)."""
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
    # The SDK puts an OpenTelemetry span around every message unless it is dropped from the
    # chain; the hub exports no traces (its record is the audit events), and the span was
    # about a sixth of the SDK's per-call work (cProfile: 40 of 210 calls a request).
    server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
    middleware = HubMiddleware(store, directory, http_identity, events)
    middleware.server = server
    server.middleware.append(middleware)
    return server
