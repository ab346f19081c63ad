"""CLI commands of the hub: ``crowdtui hub`` (foreground) and ``crowdtui token issue|revoke|ls``."""

from __future__ import annotations

import argparse
import json
import sys

from crowdtui.cli.common import completes_agents, emit, open_store, print_json, wants_json, workspace_of


def register(sub) -> None:
    p = sub.add_parser(
        "hub",
        help="run the host in the foreground: the MCP hub (one door per running agent), its "
        "policies and dispatch (the chat side)",
        description="Run this workspace's host (the same as `crowdtui serve` and the console's "
        "own hub): the hub's and dispatch's MCP tools on a unix socket per running agent "
        "(.crowd/ipc/NAME/mcp.sock), following agents as they start and stop, launch policies "
        "and supervision, dispatch (routes, channels, scheduled tasks), and streamable HTTP "
        "when [hub] http_port is set. Ctrl-C stops it; agents keep running.",
    )
    p.add_argument("--http-port", type=int, default=None, metavar="PORT",
                   help="also serve streamable HTTP on this port (default: crowd.toml [hub] http_port; 0 = off)")
    p.add_argument("--http-host", default=None, metavar="HOST",
                   help="address for HTTP (default: crowd.toml [hub] http_host, 127.0.0.1)")
    p.add_argument("--no-dispatch", action="store_true",
                   help="do not run dispatch's loops and chat HTTP side here (its tools are still "
                   "served; run it with `crowdtui serve --no-hub`)")
    p.add_argument("--no-engine", dest="no_dispatch", action="store_true",
                   help=argparse.SUPPRESS)  # the old name of --no-dispatch
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("token", help="bearer tokens for agents that reach the hub over HTTP")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    t = tsub.add_parser("issue", help="make a new token for an agent (printed once; only its hash is kept)")
    completes_agents(t.add_argument("name", metavar="NAME"))
    t.set_defaults(func=cmd_token_issue)
    t = tsub.add_parser("revoke", help="revoke an agent's tokens (all, or one by --id)")
    completes_agents(t.add_argument("name", metavar="NAME"))
    t.add_argument("--id", type=int, default=None, help="only this token (see `token ls`)")
    t.set_defaults(func=cmd_token_revoke)
    t = tsub.add_parser("ls", help="list an agent's tokens (never the tokens themselves)")
    completes_agents(t.add_argument("name", metavar="NAME", nargs="?"))
    t.set_defaults(func=cmd_token_ls)


async def cmd_token_issue(args) -> int:
    from crowdtui.hub.tokens import issue_token

    async with open_store(args) as store:
        await _sync_roster(workspace_of(args), store)
        token = await issue_token(store, args.name, actor=args.actor)
    emit(args, {"agent": args.name, "token": token}, token)
    print(f"token for {args.name}: shown once, keep it secret; send it as `Authorization: Bearer <token>`",
          file=sys.stderr)
    return 0


async def cmd_token_revoke(args) -> int:
    from crowdtui.errors import CrowdError
    from crowdtui.hub.tokens import revoke_tokens

    async with open_store(args) as store:
        n = await revoke_tokens(store, args.name, actor=args.actor, token_id=args.id)
    if n == 0:
        which = f"token {args.id} of {args.name}" if args.id is not None else f"tokens of {args.name}"
        raise CrowdError(f"no valid {which} to revoke; `crowdtui token ls {args.name}` lists them")
    emit(args, {"agent": args.name, "revoked": n, "id": args.id},
         f"revoked {n} token{'s' if n != 1 else ''} of {args.name}")
    return 0


async def cmd_token_ls(args) -> int:
    import dataclasses
    import time

    from crowdtui.hub.tokens import list_tokens

    async with open_store(args) as store:
        tokens = await list_tokens(store, args.name)
    if args.json:
        print_json([dataclasses.asdict(t) for t in tokens])
        return 0
    if not tokens:
        print("no tokens" + (f" for {args.name}" if args.name else ""))
        return 0

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"

    print(f"{'ID':>4}  {'AGENT':<16} {'TOKEN':<14} {'CREATED':<17} {'STATE'}")
    for t in tokens:
        state = f"revoked {when(t.revoked_at)}" if t.revoked_at else "valid"
        print(f"{t.id:>4}  {t.agent:<16} {t.prefix + '…':<14} {when(t.created_at):<17} {state}")
    return 0


async def cmd_hub(args) -> int:
    """The host in the foreground, printing what it serves (``crowdtui.host``)."""
    import logging
    import os

    from crowdtui.host import Host, HostOptions, run_foreground

    logging.basicConfig(level=logging.WARNING, format="crowdtui hub: %(message)s")
    logging.getLogger("crowdtui.hub").setLevel(logging.INFO)  # doors opening and closing
    ws = workspace_of(args)

    def log(line: str) -> None:
        if line != "stopped":  # said on stdout below
            print(f"crowdtui hub: {line}", file=sys.stderr, flush=True)

    opts = HostOptions(dispatch=not args.no_dispatch, hub_http_port=args.http_port, hub_http_host=args.http_host)

    def ready(host) -> None:
        doors = sorted(host.hub.doors)
        if wants_json(args):  # JSON Lines: this one now, {"event": "stopped"} at the end
            print(json.dumps({"event": "ready", "workspace": str(ws.root), "pid": os.getpid(),
                              "doors": doors, "http": host.hub.http_url or None,
                              "dispatch": host.dispatch_url if host.dispatch_running else None}), flush=True)
            return
        print(f"crowdtui hub: serving {ws.root} (pid {os.getpid()})", flush=True)
        print(f"  doors: {', '.join(doors) if doors else 'none yet (agents get one when they start)'}", flush=True)
        if host.hub.http_url:
            print(f"  http:  {host.hub.http_url} (bearer tokens: crowdtui token issue NAME)", flush=True)
        for line in host.summary()[1:]:
            print(f"  {line}", flush=True)

    status = await run_foreground(Host(ws, options=opts, log=log), ready=ready)
    print(json.dumps({"event": "stopped", "status": status}) if wants_json(args) else "crowdtui hub: stopped",
          flush=True)
    return status


async def _sync_roster(ws, store) -> None:
    """Register the roster's agents (so a token can name them), if the roster loads."""
    import logging

    try:
        from crowdtui.roster import load_roster, sync_roster

        roster = load_roster(ws)
        await sync_roster(store, roster)
    except Exception as exc:  # the registry still knows the agents it had
        logging.getLogger(__name__).warning("roster not synced (%s); using the registered agents", exc)
