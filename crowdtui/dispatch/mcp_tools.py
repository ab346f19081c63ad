"""Dispatch's MCP tools, added to the hub's server by ``crowdtui serve``.

- ``reply(chat, text)``: any agent, for chats routed to it or to one of its children.
- routes and tasks: ``list_*`` for tiers 0 and 1; changing them for tier 0, and only
  for targets that are the caller or its descendants. The operator (``crowdtui mcp``)
  may do all of it, for every agent.

The hub's grants decide first (tool names are listed in ``crowdtui.hub.grants``);
these checks narrow further. Errors are MCPErrors that say what to do.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.exceptions import MCPError

from crowdtui.hub.identity import caller
from crowdtui.hub.tools import DENIED, plain, qms_errors
from qms.names import OPERATOR

DISPATCH_TOOLS = ("reply", "list_routes", "add_route", "move_route", "remove_route",
                "list_tasks", "add_task", "pause_task", "resume_task", "remove_task")


async def _tier(store, name: str) -> int:
    if name == OPERATOR:  # `crowdtui mcp`: the operator's own AI client
        return 0
    a = await store.get_agent(name)
    if a is None:
        raise MCPError(code=DENIED, message=f"{name} is not a registered agent")
    return a.tier


async def _require_tier(store, me: str, most: int, what: str) -> None:
    tier = await _tier(store, me)
    if tier > most:
        raise MCPError(code=DENIED, message=f"{what} needs tier {most} or higher authority (you are tier {tier}); "
                                            "ask your parent or the operator")


async def _require_own(store, me: str, target: str) -> None:
    if me == OPERATOR:
        return
    name, seen = target, set()
    while name and name not in seen:
        if name == me:
            return
        seen.add(name)
        a = await store.get_agent(name)
        name = a.parent if a else None
    raise MCPError(code=DENIED, message=f"{target} is neither you nor one of your descendants; "
                                        "route or schedule only for your own tree")


def add_dispatch_tools(server, dispatch) -> None:
    store = dispatch.store
    now = dispatch.clock.now

    @server.tool()
    async def reply(chat: str, text: str, reply_to: str | None = None) -> dict[str, Any]:
        """Send text to a chat (the `chat` a routed message came with) through its channel."""
        me = caller()
        with qms_errors():
            oid = await dispatch.reply(me, chat, text, reply_to=reply_to)
        return {"queued": oid, "chat": chat}

    async def _route_authority(me: str, action: str, subject: str, target: str | None = None) -> None:
        """Tier 0, and for a new route a target in the caller's tree; else a route.refused event."""
        try:
            await _require_tier(store, me, 0, f"{action}_route")
            if target is not None:
                await _require_own(store, me, target)
        except MCPError as exc:
            from crowdtui.dispatch.routes import record_refusal

            await record_refusal(store, me, action, subject[:80], exc.error.message)
            raise

    def _below_note(me: str, route, asked: int | None) -> str:
        if me == OPERATOR:
            return f"placed at {route.position}: an operator route"
        where = f"placed at {route.position}"
        if asked and asked != route.position:
            where += f" (you asked for {asked})"
        return (f"{where}: routes an agent adds always stay below every operator route, and they only pass on "
                f"messages the routes already give to {me}; only the operator's routes let a chat in "
                "(others stay held)")

    @server.tool()
    async def list_routes() -> dict[str, Any]:
        """The route table in order: match expression -> agent, with each route's owner and state
        (active, or pending: an agent's wide route waiting for the operator's approval)."""
        await _require_tier(store, caller(), 1, "list_routes")
        from crowdtui.dispatch.routes import list_routes as _list

        return {"routes": plain(await _list(store))}

    @server.tool()
    async def add_route(match: str, agent: str, position: int | None = None) -> dict[str, Any]:
        """Add a route you own for messages the routes give you, e.g. match="platform=local chat=local:ann".
        It goes below every operator route (position counts from the top; default last). A wide match (one
        that does not pin one platform AND one room or chat, without glob characters) waits for the
        operator's approval before it routes anything."""
        me = caller()
        await _route_authority(me, "add", str(agent), target=agent)
        from crowdtui.dispatch.matching import parse_expression, wide_reason
        from crowdtui.dispatch.routes import add_route as _add

        with qms_errors():
            route = await _add(store, match, agent, actor=me, position=position, now=now())
        note = _below_note(me, route, position)
        if route.state == "pending":
            note = (f"pending: this match is wide ({wide_reason(parse_expression(route.match))}), so it routes "
                    f"nothing until the operator approves it (`crowdtui route approve {route.id}`); {note}")
        return {"route": plain(route), "note": note}

    @server.tool()
    async def move_route(route_id: int, position: int) -> dict[str, Any]:
        """Move a route you added (1 is tried first; yours stay below every operator route)."""
        me = caller()
        await _route_authority(me, "move", str(route_id))
        from crowdtui.dispatch.routes import move_route as _move

        with qms_errors():
            route = await _move(store, route_id, position, actor=me)
        return {"route": plain(route), "note": _below_note(me, route, position)}

    @server.tool()
    async def remove_route(route_id: int) -> dict[str, Any]:
        """Remove a route you added, by id (pending ones too)."""
        me = caller()
        await _route_authority(me, "remove", str(route_id))
        from crowdtui.dispatch.routes import remove_route as _rm

        with qms_errors():
            return {"removed": plain(await _rm(store, route_id, actor=me))}

    @server.tool()
    async def list_tasks() -> dict[str, Any]:
        """Scheduled tasks with their schedule, state and next due time (epoch seconds)."""
        await _require_tier(store, caller(), 1, "list_tasks")
        from crowdtui.dispatch.tasks import list_tasks as _list

        return {"tasks": plain(await _list(store))}

    @server.tool()
    async def add_task(name: str, agent: str, schedule: str, text: str) -> dict[str, Any]:
        """Schedule a message to an agent: schedule is cron:'*/5 * * * *', every:10m or at:2026-01-01T09:00:00Z.

        Your tasks fire only while you are running, count against your quotas (how many
        tasks, how often, how long a text; a refusal says which) and go when you leave.
        """
        me = caller()
        await _require_tier(store, me, 0, "add_task")
        await _require_own(store, me, agent)
        from crowdtui.dispatch.tasks import add_task as _add

        with qms_errors():
            return {"task": plain(await _add(store, name=name, agent=agent, schedule=schedule, text=text,
                                             actor=me, now=now()))}

    async def _own_task(me: str, name: str):
        from crowdtui.dispatch.tasks import get_task

        with qms_errors():
            task = await get_task(store, name)
        await _require_own(store, me, task.agent)
        return task

    @server.tool()
    async def pause_task(name: str) -> dict[str, Any]:
        """Pause a scheduled task (it keeps its schedule)."""
        me = caller()
        await _require_tier(store, me, 0, "pause_task")
        await _own_task(me, name)
        from crowdtui.dispatch.tasks import set_paused

        with qms_errors():
            return {"task": plain(await set_paused(store, name, True, actor=me, now=now()))}

    @server.tool()
    async def resume_task(name: str) -> dict[str, Any]:
        """Resume a paused task; its next run is computed from now (no backlog)."""
        me = caller()
        await _require_tier(store, me, 0, "resume_task")
        await _own_task(me, name)
        from crowdtui.dispatch.tasks import set_paused

        with qms_errors():
            return {"task": plain(await set_paused(store, name, False, actor=me, now=now()))}

    @server.tool()
    async def remove_task(name: str) -> dict[str, Any]:
        """Remove a scheduled task."""
        me = caller()
        await _require_tier(store, me, 0, "remove_task")
        await _own_task(me, name)
        from crowdtui.dispatch.tasks import remove_task as _rm

        with qms_errors():
            return {"removed": plain(await _rm(store, name, actor=me))}


def add_operator_tools(server, store) -> None:
    """Tools only the operator has (``crowdtui mcp`` registers them; the hub does not, so no
    agent sees them): deciding agents' pending routes, as ``crowdtui route approve|reject``."""

    @server.tool()
    async def decide_route(route_id: int, approve: bool) -> dict[str, Any]:
        """Approve (approve=true) or reject an agent's pending route (a wide match waiting for
        the operator); a rejected route is removed."""
        from crowdtui.dispatch.routes import decide_pending

        with qms_errors():
            route = await decide_pending(store, route_id, approve, actor=caller())
        return {"route": plain(route), "approved": approve}
