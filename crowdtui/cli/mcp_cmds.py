"""``crowdtui mcp``: an MCP server on stdio for the operator's own AI client on the host.

    claude mcp add crowd -- crowdtui --workspace DIR mcp

It serves the hub's tools, dispatch's (routes, tasks, reply), the agent-management tools and
``decide_route`` (approve or reject an agent's pending route: the operator's alone),
acting as the operator (``--as NAME`` acts for an agent instead, recorded as such): every
call is checked and recorded (``hub.calling`` / ``hub.call``) by the hub's own middleware,
with the operator as actor. It opens the workspace's store itself (safe beside a running
host, ``serve`` or console), so it works whether or not one runs; with no host running it
syncs the registry with ``agents/`` first. Agents it starts go through the one lifecycle API
(actor ``operator``); a host, when one runs, opens their doors; without one they have no
hub until one runs (the answer says so). Nothing is written to stdout but the protocol;
logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from crowdtui.cli.common import workspace_of


def register(sub) -> None:
    p = sub.add_parser(
        "mcp", help="an MCP server on stdio for your own AI client, acting as the operator",
        description="Serve the operator's tools (messages, inbox, documents with approval, agent "
                    "lifecycle, routes, tasks) over MCP on stdin/stdout, e.g. "
                    "`claude mcp add crowd -- crowdtui --workspace DIR mcp`.")
    p.set_defaults(func=cmd_mcp, interactive="`mcp` (an MCP server: its stdout is the protocol)")


async def cmd_mcp(args) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    workspace = workspace_of(args)
    store = await workspace.open_store()
    manager = None
    try:
        server, manager, audit = await operator_server(workspace, store)
        try:
            await serve_stdio(server, args.actor)
        finally:
            await audit.drain()  # read-only calls' and refusals' records, written in groups
    finally:
        if manager is not None and manager.runtime is not None:
            manager.runtime.close()
        await store.close()
    return 0


async def operator_server(workspace, store):
    """The MCP server ``crowdtui mcp`` serves, its agent manager (for its runtime) and its
    audit log (drained before the store closes)."""
    from crowdtui.dispatch.mcp_tools import add_dispatch_tools, add_operator_tools
    from crowdtui.dispatch.service import Dispatch
    from crowdtui.host import host_running
    from crowdtui.hub.approval_tools import add_approval_tools
    from crowdtui.hub.directory import Directory, roster_definitions
    from crowdtui.hub.eventlog import EventLog
    from crowdtui.hub.manage_tools import AgentManager, add_manage_tools
    from crowdtui.hub.server import build_server
    from qms.names import OPERATOR

    if not host_running(workspace):  # no host keeps the registry in step with agents/: do it once
        from crowdtui.roster import load_roster, sync_roster

        roster = await asyncio.to_thread(load_roster, workspace)
        await sync_roster(store, roster)
    directory = Directory(store, roster_definitions(workspace))
    audit = EventLog(store)
    server = build_server(store, directory, events=audit)

    async def connect():
        from crowdtui.runtime.containers import Runtime

        return await asyncio.to_thread(Runtime, workspace)

    manager = AgentManager(workspace, store, directory, actor=OPERATOR, connect=connect,
                           host_note=lambda: None if host_running(workspace) else (
                               "no host runs for this workspace, so the agent has no hub door until one "
                               "runs (`crowdtui hub`, `crowdtui serve` or the console)"))
    add_manage_tools(server, manager)
    add_approval_tools(server, store, directory)
    add_dispatch_tools(server, Dispatch(store, log=lambda line: print(line, file=sys.stderr)))
    add_operator_tools(server, store)
    return server, manager, audit


async def serve_stdio(server, actor: str) -> None:
    """Serve ``server`` on stdin/stdout with every request made by ``actor``."""
    from crowdtui.hub.identity import DOOR_AGENT

    token = DOOR_AGENT.set(actor)  # the identity of this whole connection, as a door's is
    try:
        await server.run_stdio_async()
    finally:
        DOOR_AGENT.reset(token)
