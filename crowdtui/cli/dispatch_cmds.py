"""CLI commands of dispatch, the chat side: serve, route, task, onboard, channel."""

from __future__ import annotations

import time

from crowdtui.cli.common import completes_agents, emit, inert, open_store, print_json, wants_json, workspace_of


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="run the hub and dispatch without a screen (routes, channels, scheduler)",
        description="Run this workspace's hub (MCP doors for agents) and dispatch (chat channels, "
        "routes, onboarding, scheduled tasks) in the foreground. One per workspace. Dispatch "
        "listens on 127.0.0.1; its URL and the key channels register with are written to "
        ".crowd/run/serve.json. SIGTERM or Ctrl-C stops it cleanly; logs go to stderr.",
    )
    p.add_argument("--port", type=int, default=None, metavar="PORT",
                   help="dispatch HTTP port on 127.0.0.1 (default: crowd.toml [dispatch] port, "
                   "else any free port)")
    p.add_argument("--no-hub", action="store_true", help="dispatch only: no MCP hub")
    p.add_argument("--no-runtime", action="store_true",
                   help="no Docker: do not start or stop containers (launch policies off)")
    p.add_argument("--health-interval", type=float, default=5.0, metavar="S",
                   help="seconds between health checks of each channel (default 5)")
    p.add_argument("--health-failures", type=int, default=3, metavar="N",
                   help="failed health checks in a row before a channel is deregistered (default 3)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("route", help="chat routes: which agent gets which chat messages")
    rs = p.add_subparsers(dest="route_command", metavar="ACTION", required=True)
    r = rs.add_parser("ls", help="list routes in the order they are tried")
    r.set_defaults(func=cmd_route_ls)
    r = rs.add_parser("add", help="add a route, e.g. route add 'platform=local chat=local:ops*' ops")
    r.add_argument("match", help="glob terms over platform, room, chat, sender, verb (key=* present, key= absent, * all)")
    completes_agents(r.add_argument("agent"))
    r.add_argument("--position", type=int, default=None, help="1 is tried first (default: last)")
    r.set_defaults(func=cmd_route_add)
    r = rs.add_parser("mv", help="move a route to a position (1 is tried first)")
    r.add_argument("id", type=int)
    r.add_argument("position", type=int)
    r.set_defaults(func=cmd_route_mv)
    r = rs.add_parser("rm", help="remove a route")
    r.add_argument("id", type=int)
    r.set_defaults(func=cmd_route_rm)
    for action, helptext in (("approve", "let an agent's pending (wide) route take part in routing"),
                             ("reject", "drop an agent's pending (wide) route")):
        r = rs.add_parser(action, help=helptext)
        r.add_argument("id", type=int)
        r.set_defaults(func=cmd_route_decide, approve=action == "approve")

    p = sub.add_parser("task", help="scheduled tasks: messages to agents on a cron, interval or one-shot schedule")
    ts = p.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    t = ts.add_parser("add", help="add a task, e.g. task add standup lead every:1d 'post the standup'")
    t.add_argument("name")
    completes_agents(t.add_argument("agent"))
    t.add_argument("schedule", help="cron:'*/5 * * * *' (UTC), every:10m, or at:2026-01-01T09:00:00Z")
    t.add_argument("text", help="the message the agent gets when the task is due")
    t.set_defaults(func=cmd_task_add)
    t = ts.add_parser("ls", help="list tasks (with who created them and their last run)")
    t.set_defaults(func=cmd_task_ls)
    for action, helptext in (("pause", "pause a task"), ("resume", "resume a paused task (no backlog)"),
                             ("rm", "remove a task"), ("runs", "show a task's runs")):
        t = ts.add_parser(action, help=helptext)
        t.add_argument("name")
        t.set_defaults(func=cmd_task_action, action=action)

    p = sub.add_parser("onboard", help="chats held because no route accepts them: approve or deny")
    os_ = p.add_subparsers(dest="onboard_command", metavar="ACTION", required=True)
    o = os_.add_parser("ls", help="list held chats")
    o.set_defaults(func=cmd_onboard_ls)
    o = os_.add_parser("approve", help="route the chat to an agent and deliver what it sent")
    o.add_argument("chat")
    completes_agents(o.add_argument("agent"))
    o.set_defaults(func=cmd_onboard_approve)
    o = os_.add_parser("deny", help="drop what the chat sent (later messages are held again)")
    o.add_argument("chat")
    o.set_defaults(func=cmd_onboard_deny)

    p = sub.add_parser("channel", help="chat channels")
    cs = p.add_subparsers(dest="channel_command", metavar="KIND", required=True)
    c = cs.add_parser("local", help="a terminal chat with the crowd through a running `crowdtui serve`",
                      description="Registers with this workspace's running serve as channel NAME, owning "
                      "chats 'NAME:*'. Each line you type is a message in chat NAME:USER; replies are "
                      "printed as they come. /new, /who, /stop and @agent work as in any chat. Ctrl-D quits.")
    c.add_argument("--name", default="local", help="channel name and chat prefix (default local)")
    c.add_argument("--user", default=None, help="your name in the chat (default: $USER)")
    c.add_argument("--chat", default=None, help="chat id (default NAME:USER)")
    c.add_argument("--dispatch", default=None, metavar="URL",
                   help="dispatch URL (default: from .crowd/run/serve.json)")
    c.add_argument("--engine", dest="dispatch", default=None, help=argparse_suppress())  # old name
    c.add_argument("--web", action="store_true",
                   help="chat from a web page on 127.0.0.1 instead of the terminal (prints its URL)")
    c.add_argument("--register-key", default=None, help=argparse_suppress())
    c.set_defaults(func=cmd_channel_local, interactive="`channel local` (a terminal chat)")
    from crowdtui.cli.channel_cmds import add_network_channels

    add_network_channels(cs)
    c = cs.add_parser("send", help="send text to a chat through its channel (as the operator, or --as an agent "
                                   "the chat was routed to)")
    c.add_argument("chat")
    c.add_argument("text")
    c.set_defaults(func=cmd_channel_send)
    c = cs.add_parser("ls", help="list registered channels (with those deregistered, --all)")
    c.add_argument("--all", action="store_true", help="include channels that went down")
    c.set_defaults(func=cmd_channel_ls)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC" if t else "-"


async def cmd_serve(args) -> int:
    """The host without a screen, logging plain lines on stderr (``crowdtui.host``)."""
    import os

    from crowdtui.dispatch.serve import log_line
    from crowdtui.dispatch.service import DispatchConfig
    from crowdtui.host import Host, HostOptions, run_foreground

    ws = workspace_of(args)
    opts = HostOptions(hub=not args.no_hub, runtime=not args.no_runtime, dispatch_required=True,
                       dispatch_port=args.port,
                       dispatch_config=DispatchConfig(health_interval=args.health_interval,
                                                      health_failures=args.health_failures))

    def ready(host) -> None:
        if wants_json(args):  # one line on stdout when ready; the log stays on stderr
            import json

            print(json.dumps({"event": "ready", "workspace": str(ws.root), "pid": os.getpid(),
                              "dispatch": host.dispatch_url, "hub": host.hub is not None,
                              "runtime": host.runtime is not None}), flush=True)
        host.log(f"listening on {host.dispatch_url} (pid {os.getpid()}, workspace {ws.root}, "
                 f"hub {'on' if host.hub else 'off'}, runtime {'on' if host.runtime else 'off'})")

    return await run_foreground(Host(ws, options=opts, log=log_line), ready=ready)


async def cmd_route_ls(args) -> int:
    from crowdtui.dispatch.routes import list_routes

    async with open_store(args) as store:
        routes = await list_routes(store)
    if args.json:
        print_json([_route_json(r) for r in routes])
        return 0
    if not routes:
        print("no routes: every chat message is held for `crowdtui onboard`; add one with `crowdtui route add`")
        return 0
    print(f"{'#':>3}  {'id':>4}  {'agent':<20} {'owner':<20} {'state':<8} match")
    for r in routes:
        print(f"{r.position:>3}  {r.id:>4}  {inert(r.agent):<20} {inert(r.owner):<20} {r.state:<8} {inert(r.match)}")
    pending = [r.id for r in routes if r.state == "pending"]
    if pending:
        print(f"pending routes (agents' wide matches) route nothing until approved: `crowdtui route approve ID` "
              f"or `crowdtui route reject ID` ({', '.join(map(str, pending))})")
    return 0


def _asked(asked: int | None, got: int) -> str:
    if not asked or asked == got:
        return ""
    return f" (asked {asked}; operator routes come first, agents' routes after them)"


def _route_json(r) -> dict:
    return {"id": r.id, "position": r.position, "match": r.match, "agent": r.agent, "owner": r.owner,
            "state": r.state}


async def cmd_route_decide(args) -> int:
    from crowdtui.dispatch.routes import decide_pending

    async with open_store(args) as store:
        r = await decide_pending(store, args.id, args.approve, actor=args.actor)
    if args.approve:
        emit(args, _route_json(r),
             f"route {r.id} approved, active at {r.position}: {inert(r.match)} -> {r.agent} (owner {r.owner})")
    else:
        emit(args, _route_json(r),
             f"route {r.id} rejected and removed: {inert(r.match)} -> {r.agent} (owner {r.owner})")
    return 0


async def cmd_route_add(args) -> int:
    from crowdtui.dispatch.routes import add_route, check_match

    check_match(args.match)  # a bad expression is the first thing to hear about
    async with open_store(args) as store:
        if await store.get_agent(args.agent) is None:
            from crowdtui.errors import CrowdError

            raise CrowdError(f"no agent named {inert(args.agent)!r} is registered; `crowdtui ls` lists them")
        r = await add_route(store, args.match, args.agent, actor=args.actor, position=args.position,
                            now=time.time())
    asked = _asked(args.position, r.position)
    state = " PENDING: a wide match by an agent waits for `crowdtui route approve`" if r.state == "pending" else ""
    emit(args, _route_json(r), f"route {r.id} at {r.position}{asked}: {inert(r.match)} -> {r.agent}{state}")
    return 0


async def cmd_route_mv(args) -> int:
    from crowdtui.dispatch.routes import move_route

    async with open_store(args) as store:
        r = await move_route(store, args.id, args.position, actor=args.actor)
    emit(args, _route_json(r), f"route {r.id} now at {r.position}{_asked(args.position, r.position)}")
    return 0


async def cmd_route_rm(args) -> int:
    from crowdtui.dispatch.routes import remove_route

    async with open_store(args) as store:
        r = await remove_route(store, args.id, actor=args.actor)
    emit(args, _route_json(r), f"removed route {r.id}: {inert(r.match)} -> {r.agent}")
    return 0


async def cmd_task_add(args) -> int:
    from crowdtui.dispatch.tasks import add_task

    async with open_store(args) as store:
        if await store.get_agent(args.agent) is None:
            from crowdtui.errors import CrowdError

            raise CrowdError(f"no agent named {inert(args.agent)!r} is registered; `crowdtui ls` lists them")
        t = await add_task(store, name=args.name, agent=args.agent, schedule=args.schedule, text=args.text,
                           actor=args.actor, now=time.time())
    emit(args, _task_json(t), f"task {t.name}: {t.schedule} -> {t.agent}, next {_when(t.next_due)}")
    return 0


def _task_json(t, **extra) -> dict:
    return {"name": t.name, "agent": t.agent, "schedule": t.schedule, "state": t.state,
            "next_due": t.next_due, "text": t.text, "created_by": t.created_by, "by_agent": t.by_agent, **extra}


async def cmd_task_ls(args) -> int:
    from crowdtui.dispatch.tasks import list_tasks, runs_of

    async with open_store(args) as store:
        tasks = await list_tasks(store)
        last = {t.name: (await runs_of(store, t.name, limit=1) or [None])[-1] for t in tasks}
    if args.json:
        print_json([_task_json(t, last_run=last[t.name].__dict__ if last[t.name] else None) for t in tasks])
        return 0
    if not tasks:
        print("no tasks; add one with `crowdtui task add NAME AGENT SCHEDULE TEXT`")
        return 0
    for t in tasks:
        run = last[t.name]
        ran = f"last {run.outcome} {_when(run.ran_at)}" if run else "never ran"
        by = f"by {t.created_by}" + (" (agent)" if t.by_agent else "")
        print(f"{t.name:<16} {t.state:<7} {t.agent:<14} {inert(t.schedule):<22} {by:<24} next {_when(t.next_due)}  {ran}")
    return 0


async def cmd_task_action(args) -> int:
    from crowdtui.dispatch import tasks

    async with open_store(args) as store:
        if args.action == "runs":
            runs = await tasks.runs_of(store, args.name)
            emit(args, [r.__dict__ for r in runs],
                 *(f"{_when(r.ran_at)}  due {_when(r.due_at)}  {r.outcome}"
                   f"{f' ({r.missed} missed folded in)' if r.missed else ''}  {inert(r.detail)}" for r in runs))
            return 0
        if args.action == "rm":
            t = await tasks.remove_task(store, args.name, actor=args.actor)
            emit(args, _task_json(t, removed=True), f"removed task {t.name}")
            return 0
        t = await tasks.set_paused(store, args.name, args.action == "pause", actor=args.actor, now=time.time())
    emit(args, _task_json(t), f"task {t.name}: {t.state}, next {_when(t.next_due) if t.state == 'active' else '-'}")
    return 0


async def cmd_onboard_ls(args) -> int:
    from crowdtui.dispatch.onboarding import list_holds

    async with open_store(args) as store:
        holds = await list_holds(store)
    if args.json:
        print_json([h.__dict__ for h in holds])
        return 0
    if not holds:
        print("no chats are waiting")
        return 0
    for h in holds:
        print(f"{inert(h.chat)}  ({h.channel}) {h.count} message{'s' if h.count != 1 else ''} from "
              f"{inert(', '.join(h.senders))} since {_when(h.first_at)}; last: {inert(h.last_text[:60])!r}")
    print("approve with `crowdtui onboard approve CHAT AGENT`, or drop with `crowdtui onboard deny CHAT`")
    return 0


async def cmd_onboard_approve(args) -> int:
    from crowdtui.dispatch.onboarding import approve_held_chat

    async with open_store(args) as store:
        answer = await approve_held_chat(store, args.chat, args.agent, actor=args.actor)
    emit(args, answer.__dict__, answer.summary)
    return 0


async def cmd_onboard_deny(args) -> int:
    from crowdtui.dispatch.onboarding import deny_held_chat

    async with open_store(args) as store:
        answer = await deny_held_chat(store, args.chat, actor=args.actor)
    emit(args, answer.__dict__, answer.summary)
    return 0


async def cmd_channel_local(args) -> int:
    from crowdtui.dispatch.local_channel import run_local_channel

    return await run_local_channel(workspace_of(args), name=args.name, user=args.user, chat=args.chat,
                                   dispatch_url=args.dispatch, register_key=args.register_key, web=args.web)


async def cmd_channel_ls(args) -> int:
    from qms.channels import list_channels

    async with open_store(args) as store:
        chans = await list_channels(store, include_down=args.all)
    if args.json:
        print_json([{"name": c.name, "platform": c.platform, "callback_url": c.callback_url,
                     "prefixes": list(c.prefixes), "state": c.state, "failures": c.failures,
                     "last_ok_at": c.last_ok_at} for c in chans])
        return 0
    if not chans:
        print("no channels registered; start one, e.g. `crowdtui channel local` beside `crowdtui serve`")
        return 0
    for c in chans:
        print(f"{c.name:<14} {c.state:<5} {c.platform:<10} {inert(', '.join(c.prefixes)):<20} "
              f"{inert(c.callback_url)}  last ok {_when(c.last_ok_at)}")
    return 0


async def cmd_channel_send(args) -> int:
    from crowdtui.dispatch.service import Dispatch

    async with open_store(args) as store:
        oid = await Dispatch(store, log=lambda line: None).reply(args.actor, args.chat, args.text)
    emit(args, {"outbound": oid, "chat": args.chat},
         f"queued as outbound {oid} for {inert(args.chat)} (a running serve delivers it)")
    return 0
