"""CLI commands of the hub: ``crowdtui hub`` (foreground) and ``crowdtui token issue|revoke|ls``."""

from __future__ import annotations

import sys

from crowdtui.cli.common import open_store, print_json, workspace_of


def register(sub) -> None:
    p = sub.add_parser(
        "hub",
        help="run the MCP hub alone in the foreground (one door per running agent)",
        description="Serve the hub's MCP tools to this workspace's agents: a unix socket per "
        "running agent (.crowd/ipc/NAME/mcp.sock), following agents as they start and stop, "
        "and streamable HTTP when [hub] http_port is set. Ctrl-C stops it.",
    )
    p.add_argument("--http-port", type=int, default=None, metavar="PORT",
                   help="also serve streamable HTTP on this port (default: crowd.toml [hub] http_port; 0 = off)")
    p.add_argument("--http-host", default=None, metavar="HOST",
                   help="address for HTTP (default: crowd.toml [hub] http_host, 127.0.0.1)")
    p.set_defaults(func=cmd_hub)

    p = sub.add_parser("token", help="bearer tokens for agents that reach the hub over HTTP")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    t = tsub.add_parser("issue", help="make a new token for an agent (printed once; only its hash is kept)")
    t.add_argument("name", metavar="NAME")
    t.set_defaults(func=cmd_token_issue)
    t = tsub.add_parser("revoke", help="revoke an agent's tokens (all, or one by --id)")
    t.add_argument("name", metavar="NAME")
    t.add_argument("--id", type=int, default=None, help="only this token (see `token ls`)")
    t.set_defaults(func=cmd_token_revoke)
    t = tsub.add_parser("ls", help="list an agent's tokens (never the tokens themselves)")
    t.add_argument("name", metavar="NAME", nargs="?")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=cmd_token_ls)


async def cmd_token_issue(args) -> int:
    from crowdtui.hub.tokens import issue_token

    async with open_store(args) as store:
        await _sync_roster(workspace_of(args), store)
        token = await issue_token(store, args.name, actor=args.actor)
    print(token)
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
    print(f"revoked {n} token{'s' if n != 1 else ''} of {args.name}")
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
    import asyncio
    import logging
    import signal

    from crowdtui.hub.hub import Hub

    logging.basicConfig(level=logging.WARNING, format="crowdtui hub: %(message)s")
    logging.getLogger("crowdtui.hub").setLevel(logging.INFO)  # doors opening and closing
    ws = workspace_of(args)
    async with open_store(args) as store:
        await _sync_roster(ws, store)
        await _refresh_states(ws, store)
        hub = Hub(ws, store, http_port=args.http_port, http_host=args.http_host)
        await hub.start()
        try:
            opened = await hub.open_running_doors()
            hub.follow_registry()
            runtime = _runtime(ws)
            stop_states = None
            if runtime is not None:
                from crowdtui.runtime.state import start_following

                # container states followed here too, so the supervisor sees crashes and
                # restarts even when no console or serve runs
                _follower, stop_states = start_following(runtime, store)
                hub.run_policies(runtime)
            print(f"crowdtui hub: serving {ws.root} (pid {__import__('os').getpid()})", flush=True)
            print(f"  doors: {', '.join(opened) if opened else 'none yet (agents get one when they start)'}", flush=True)
            if hub.http_url:
                print(f"  http:  {hub.http_url} (bearer tokens: crowdtui token issue NAME)", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            roster_task = asyncio.create_task(_follow_roster(ws, store, stop), name="hub-follow-roster")
            await stop.wait()
            roster_task.cancel()
            await asyncio.gather(roster_task, return_exceptions=True)
            if stop_states is not None:
                await stop_states()
        finally:
            await hub.stop()
    print("crowdtui hub: stopped", flush=True)
    return 0


async def _sync_roster(ws, store) -> None:
    """Register the roster's agents (so their doors can open), if the roster loads."""
    import logging

    try:
        from crowdtui.roster import load_roster, sync_roster

        roster = load_roster(ws)
        await sync_roster(store, roster)
    except Exception as exc:  # the hub still serves what the registry knows
        logging.getLogger(__name__).warning("roster not synced (%s); serving the registered agents", exc)


async def _follow_roster(ws, store, stop) -> None:
    """Register agents added to agents/ (and drop removed ones) while the hub runs."""
    import logging

    try:
        from crowdtui.roster import record_roster_changes, watch_roster

        async for update in watch_roster(ws, stop_event=stop):
            if update.diff:
                await record_roster_changes(store, update.roster, update.diff)
    except Exception as exc:
        logging.getLogger(__name__).warning("stopped following the roster (%s)", exc)


def _runtime(ws):
    """The container runtime, or None (then no announcements or launch policies)."""
    import logging

    try:
        from crowdtui.runtime.containers import Runtime

        return Runtime(ws)
    except Exception as exc:
        logging.getLogger(__name__).warning("no Docker engine (%s): no announcements or launch policies", exc)
        return None


async def _refresh_states(ws, store) -> None:
    """Bring agent states up to date from the engine, so doors open for what really runs."""
    import logging

    try:
        from crowdtui.runtime.containers import Runtime
        from crowdtui.runtime.state import StateFollower

        await StateFollower(Runtime(ws), store).reconcile()
    except Exception as exc:
        logging.getLogger(__name__).warning("agent states not refreshed from the engine (%s)", exc)
