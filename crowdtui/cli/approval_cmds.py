"""``crowdtui approvals ls|show|allow|reject|rules|revoke``: the crew's one approval queue.

Every permission request of every agent waits in the store (``qms.permissions``); the
agent holds its turn until someone answers (the console, this command, a chat channel, the
agent's parent over MCP) or the request expires (crowd.toml ``[approvals] timeout``). The
operator answers any request; ``--as NAME`` answers with NAME's authority (only NAME's
descendants' requests, for a tool NAME's grants allow), as the hub's
``answer_permission`` does.
"""

from __future__ import annotations

import time

from crowdtui.cli.common import completes_agents, emit, inert, open_store, print_json, workspace_of
from crowdtui.errors import CrowdError
from qms.names import OPERATOR


def register(sub) -> None:
    p = sub.add_parser("approvals", help="permission requests of agents: ls, show, allow, reject, rules, revoke")
    ss = p.add_subparsers(dest="approvals_cmd", metavar="ACTION", required=True)
    s = ss.add_parser("ls", help="the requests waiting for an answer, oldest first (--all: every state, newest 50)")
    s.add_argument("--all", action="store_true", help="also answered, expired and cancelled requests")
    completes_agents(s.add_argument("--agent", metavar="NAME", help="only this agent's requests"))
    s.set_defaults(func=cmd_ls)
    s = ss.add_parser("show", help="one request whole, with its diff")
    s.add_argument("id", help="the request's id (see `approvals ls`)")
    s.set_defaults(func=cmd_show)
    for verb, what in (("allow", "allow"), ("reject", "reject")):
        s = ss.add_parser(verb, help=f"{what} a request once (--always: remember it for that agent and tool)")
        s.add_argument("id", help="the request's id (see `approvals ls`)")
        s.add_argument("--always", action="store_true",
                       help=f"{what} this agent's requests for this tool from now on (`approvals revoke` undoes it)")
        s.set_defaults(func=cmd_answer, verb=verb)
    s = ss.add_parser("rules", help="the remembered \"always\" answers, per agent and tool")
    completes_agents(s.add_argument("--agent", metavar="NAME", help="only this agent's rules"))
    s.set_defaults(func=cmd_rules)
    s = ss.add_parser("revoke", help="forget an \"always\" answer: the agent asks again next time")
    completes_agents(s.add_argument("agent", metavar="AGENT"))
    s.add_argument("tool", metavar="TOOL", help="the tool key, as `approvals rules` shows it")
    s.set_defaults(func=cmd_revoke)


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    left = at - now
    if left <= 0:
        return "now"
    return f"in {left:.0f}s" if left < 120 else f"in {left / 60:.0f}m"


def _line(r, now: float) -> str:
    state = f"expires {_when(r.expires_at, now)}" if r.state == "pending" else f"{r.outcome} by {r.answered_by}"
    diff = " [diff]" if r.diff is not None else ""
    return f"{r.id:>5}  {inert(r.agent):<16} {inert(r.tool, multiline=False):<16} {inert(r.title, multiline=False)}{diff}  ({state})"


async def cmd_ls(args) -> int:
    from crowdtui.hub.approvals import pending_requests
    from qms import permissions

    async with open_store(args) as store:
        agents = [args.agent] if args.agent else None
        if args.all:
            await pending_requests(store)  # expire the overdue first, as every reader of the queue does
            rows = await permissions.list_requests(store, state=None, agents=agents, limit=50)
        else:
            rows = await pending_requests(store, agents)
    if args.json:
        print_json([r.as_dict() for r in rows])
    elif not rows:
        print("no permission request waits" if not args.all else "no permission requests yet")
    else:
        now = time.time()
        for r in rows:
            print(_line(r, now))
    return 0


async def cmd_show(args) -> int:
    from qms import permissions

    async with open_store(args) as store:
        r = await permissions.get_request(store, args.id)
    lines = [_line(r, time.time()), f"options: {', '.join(r.options)}"]
    if r.detail:
        import json

        lines.append("detail: " + inert(json.dumps(r.detail, sort_keys=True)[:2000], multiline=False))
    if r.diff is not None:
        lines += ["", inert(r.diff)]
    emit(args, r.as_dict(), *lines)
    return 0


async def _refusal(store, workspace, me: str, request) -> str | None:
    """Why ``me`` (``--as``) may not answer ``request``: the hub's rule for agents."""
    if me == OPERATOR:
        return None
    from crowdtui.hub.approval_tools import may_answer
    from crowdtui.hub.directory import Directory, roster_definitions

    return await may_answer(Directory(store, roster_definitions(workspace)), me, request)


async def cmd_answer(args) -> int:
    from crowdtui.hub.approvals import answer_permission
    from qms import permissions

    outcome = f"{args.verb}_{'always' if args.always else 'once'}"
    async with open_store(args) as store:
        request = await permissions.get_request(store, args.id)
        reason = await _refusal(store, workspace_of(args), args.actor, request)
        if reason is not None:
            await store.append_event(args.actor, "permission.refused", str(request.id),
                                     {"request": request.id, "outcome": outcome, "reason": reason})
            raise CrowdError(reason)
        done = await answer_permission(store, request.id, outcome, args.actor)
    rule = f"; {done.agent}'s {done.tool} requests are {args.verb}ed from now on" if args.always else ""
    emit(args, done.as_dict(),
         f"request {done.id} of {inert(done.agent)} ({inert(done.tool, multiline=False)}): {outcome}{rule}")
    return 0


async def cmd_rules(args) -> int:
    from qms import permissions

    async with open_store(args) as store:
        rules = await permissions.list_rules(store, args.agent)
    if args.json:
        print_json([r.as_dict() for r in rules])
    elif not rules:
        print("no \"always\" rules; `approvals allow ID --always` makes one")
    else:
        for r in rules:
            made = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
            print(f"{inert(r.agent):<16} {inert(r.tool, multiline=False):<24} {r.outcome:<14} "
                  f"by {inert(r.created_by)} {made}")
    return 0


async def cmd_revoke(args) -> int:
    from qms import permissions

    async with open_store(args) as store:
        rule = await permissions.revoke_rule(store, args.agent, args.tool, actor=args.actor)
    emit(args, rule.as_dict(),
         f"revoked: {inert(rule.agent)} asks again for {inert(rule.tool, multiline=False)} (was {rule.outcome})")
    return 0
