"""CLI: the agents' containers — ``ls``, ``up``, ``down``, ``restart``, ``logs``, ``stats``.

With ``--json`` each prints the shape docs/cli-json.md gives it (``logs``: JSON Lines).
"""

from __future__ import annotations

import json
import sys

from crowdtui.cli.common import completes_agents, emit, inert, open_store, print_json, wants_json, workspace_of
from crowdtui.errors import CrowdError, UsageError
from qms.names import OPERATOR


def register(sub) -> None:
    p = sub.add_parser("ls", help="list agents: tier, state, unread messages, image")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("up", help="start agents' containers")
    completes_agents(p.add_argument("names", nargs="*", metavar="NAME"))
    p.add_argument("--all", action="store_true", help="every agent in the roster")
    p.add_argument("--host", action="store_true",
                   help="if no host (hub) runs for the workspace, start one in the background so the "
                   "agents get their MCP door (default: say that they have none)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop agents' containers (their homes stay)")
    completes_agents(p.add_argument("names", nargs="*", metavar="NAME"))
    p.add_argument("--all", action="store_true", help="every running agent of the workspace")
    p.add_argument("--rm", action="store_true", help="also remove the stopped containers")
    p.add_argument("--timeout", type=int, default=10, metavar="S",
                   help="seconds to wait after SIGTERM before killing (default 10)")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("restart", help="replace an agent's container with a fresh one")
    completes_agents(p.add_argument("name", metavar="NAME"))
    p.add_argument("--host", action="store_true",
                   help="if no host (hub) runs for the workspace, start one in the background")
    p.set_defaults(func=cmd_restart)

    p = sub.add_parser("logs", help="an agent's container output, or all agents merged")
    completes_agents(p.add_argument("names", nargs="*", metavar="NAME", help="agents (default: all)"))
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("-n", "--tail", type=int, default=100, metavar="N",
                   help="lines of each agent to show first (default 100)")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stats", help="CPU and memory per running agent")
    p.set_defaults(func=cmd_stats)


# --------------------------------------------------------------------------- helpers


def _roster(ws):
    from crowdtui.roster import load_roster

    return load_roster(ws)


def _unknown(name: str, roster) -> CrowdError:
    from crowdtui.runtime.containers import UnknownAgent

    related = [p for p in roster.problems if f"/{name}/" in f"/{p.file}"]
    if related:
        return UnknownAgent(f"agent {inert(name)!r} did not load: {related[0]}")
    known = ", ".join(roster.names()) or "none"
    return UnknownAgent(
        f"unknown agent {inert(name)!r}; the roster in agents/ has: {known}"
    )


def _definitions(roster, names: list[str], use_all: bool) -> list:
    """Roster definitions for ``names`` (or every launchable one with ``--all``)."""
    if use_all and names:
        raise UsageError("give agent names or --all, not both")
    if use_all:
        agents = [a for a in roster if a.launch != "per_message"]
        if not agents:
            raise CrowdError("the roster in agents/ defines no agents; add agents/<name>/AGENT.md")
        return agents
    if not names:
        raise UsageError("name the agents to act on, or pass --all")
    missing = [n for n in names if n not in roster]
    if missing:
        raise _unknown(missing[0], roster)
    return [roster.get(n) for n in dict.fromkeys(names)]


def _actor(args) -> str:
    return getattr(args, "actor", None) or OPERATOR


def _line(info) -> str:
    return f"{info.name}: {info.describe()} ({info.container_name}, {info.image})"


def container_json(info, **extra) -> dict:
    """An agent's container after a change (``up``, ``down``, ``restart`` with --json)."""
    return {"name": info.name, "state": info.state, "detail": info.describe(),
            "exit_code": info.exit_code, "container": info.short_id,
            "container_name": info.container_name, "image": info.image, **extra}


# --------------------------------------------------------------------------- commands


async def cmd_ls(args) -> int:
    from crowdtui.runtime.containers import Runtime

    ws = workspace_of(args)
    roster = _roster(ws)
    runtime = Runtime(ws)
    try:
        containers = {i.name: i for i in await runtime.list()}
        default_image = runtime.default_image()
    finally:
        runtime.close()
    async with open_store(args) as store:
        registry = {a.name: a for a in await store.list_agents()}
        unread = await store.unread_counts()
    rows = []
    for name in sorted(set(roster.agents) | set(registry) | set(containers)):
        d, reg, info = roster.get(name), registry.get(name), containers.get(name)
        if info is not None:
            state, detail = info.state, info.describe()
        elif reg is not None and reg.state:
            state = detail = reg.state
        else:
            state = detail = "not started"
        rows.append({
            "name": name,
            "tier": d.tier if d else (reg.tier if reg else None),
            "path": d.rel_path if d else (reg.path if reg else None),
            "state": state,
            "detail": detail,
            "exit_code": info.exit_code if info else None,
            "oom_killed": bool(info and info.oom_killed),
            "unread": int(unread.get(name, 0)),
            "image": info.image if info else (runtime.image_for(d) if d else default_image),
            "container": info.short_id if info else None,
            "defined": d is not None,
            "registered": reg is not None,
            "engine": info.where() if info else (d.engine if d and d.engine else None),
        })
    if args.json:
        print_json(rows)
        return 0
    for problem in roster.errors:
        print(f"crowdtui: {inert(str(problem))}", file=sys.stderr)
    if not rows:
        print("no agents; add agents/<name>/AGENT.md (see `crowdtui init`)")
        return 0
    width = max(4, *(len(r["name"]) for r in rows))
    engines = any((r["engine"] or "local") != "local" for r in rows)  # one engine: no column
    head = f"{'ENGINE':<10}  " if engines else ""
    print(f"{'NAME':<{width}}  TIER  {'STATE':<24}  UNREAD  {head}IMAGE")
    for r in rows:
        tier = "-" if r["tier"] is None else str(r["tier"])
        mark = "" if r["defined"] else "  (not in roster)"
        where = f"{r['engine'] or '-':<10}  " if engines else ""
        print(f"{r['name']:<{width}}  {tier:>4}  {r['detail']:<24}  {r['unread']:>6}  {where}{r['image']}{mark}")
    return 0


async def cmd_up(args) -> int:
    from crowdtui.runtime import lifecycle
    from crowdtui.runtime.containers import Runtime

    ws = workspace_of(args)
    agents = _definitions(_roster(ws), args.names, args.all)
    runtime = Runtime(ws, progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    started, failed = [], []
    try:
        async with open_store(args) as store:
            for agent in agents:
                try:
                    info = await lifecycle.start(runtime, store, agent, actor=_actor(args), register_first=True)
                except CrowdError as exc:
                    failed.append({"name": agent.name, "error": inert(exc)})
                    print(f"crowdtui: {exc}", file=sys.stderr)
                    continue
                current = runtime.is_current(agent, info)
                started.append(container_json(info, current=current))
                note = ""
                if not current:
                    note = (f"; it was started from an older definition or image, "
                            f"`crowdtui restart {agent.name}` applies the current one")
                if not wants_json(args):
                    print(_line(info) + note)
    finally:
        runtime.close()
    host = await _no_host_notice(ws, args) if started else None
    emit(args, {"started": started, "failed": failed, "host": host})
    return 1 if failed else 0


async def _no_host_notice(ws, args) -> dict:
    """No host (hub) runs for the workspace: the agents started have no MCP door until one
    does. Say so plainly, or start one in the background with ``--host``. Returns the
    ``host`` of the JSON answer: ``{"running", "started_pid", "log"}``."""
    from crowdtui.host import host_running, start_background

    if host_running(ws):
        return {"running": True, "started_pid": None, "log": None}
    if getattr(args, "host", False):
        pid, log_file = start_background(ws)
        print(f"crowdtui: started the host in the background (pid {pid}; log {log_file}); "
              "it opens the agents' MCP doors. Stop it with `kill " + str(pid) + "`", file=sys.stderr)
        return {"running": True, "started_pid": pid, "log": str(log_file)}
    print("crowdtui: no host runs for this workspace, so the agent(s) have no hub (no MCP door, "
          "no messages) until one does. Start one: `crowdtui hub` or `crowdtui serve` (foreground), "
          "the console (`crowdtui`), or `crowdtui up --host NAME` (in the background).", file=sys.stderr)
    return {"running": False, "started_pid": None, "log": None}


async def cmd_down(args) -> int:
    from crowdtui.runtime import lifecycle
    from crowdtui.runtime.containers import Runtime

    ws = workspace_of(args)
    runtime = Runtime(ws)
    try:
        containers = {i.name: i for i in await runtime.list()}
        if args.all and args.names:
            raise UsageError("give agent names or --all, not both")
        if args.all:
            names = [n for n, i in containers.items() if i.running or args.rm]
        elif args.names:
            roster = _roster(ws)
            unknown = [n for n in args.names if n not in roster and n not in containers]
            if unknown:
                raise _unknown(unknown[0], roster)
            names = list(dict.fromkeys(args.names))
        else:
            raise UsageError("name the agents to stop, or pass --all")
        out = []
        async with open_store(args) as store:
            for name in names:
                info = containers.get(name)
                if info is None:
                    out.append({"name": name, "state": "not started", "container": None, "removed": False})
                    continue
                if info.running or info.state == "created":
                    info = await lifecycle.stop(runtime, store, name, actor=_actor(args), timeout=args.timeout)
                if args.rm:
                    await lifecycle.remove(runtime, store, name, info, actor=_actor(args))
                out.append(container_json(info, removed=bool(args.rm)))
        lines = [f"{r['name']}: {r['state']}" if r["container"] is None
                 else f"{r['name']}: {r['detail']}, container removed" if r["removed"]
                 else f"{r['name']}: {r['detail']} ({r['container_name']}, {r['image']})" for r in out]
        if args.all and not names:
            lines = ["no agent is running"]
        emit(args, {"stopped": out}, *lines)
    finally:
        runtime.close()
    return 0


async def cmd_restart(args) -> int:
    from crowdtui.runtime import lifecycle
    from crowdtui.runtime.containers import Runtime

    ws = workspace_of(args)
    (agent,) = _definitions(_roster(ws), [args.name], False)
    runtime = Runtime(ws)
    try:
        async with open_store(args) as store:
            info = await lifecycle.restart(runtime, store, agent, actor=_actor(args), register_first=True)
            if not wants_json(args):
                print(_line(info))
    finally:
        runtime.close()
    host = await _no_host_notice(ws, args)
    emit(args, {"restarted": container_json(info), "host": host})
    return 0


async def cmd_logs(args) -> int:
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.logs import follow_logs, read_logs

    if args.tail < 0:
        raise UsageError("--tail must be 0 or more")
    ws = workspace_of(args)
    runtime = Runtime(ws)
    try:
        names = list(dict.fromkeys(args.names))
        if names:
            known = {i.name for i in await runtime.list()}
            missing = [n for n in names if n not in known]
            if missing:
                roster = _roster(ws)
                if missing[0] not in roster:
                    raise _unknown(missing[0], roster)
                from crowdtui.runtime.logs import archived_logs

                earlier = archived_logs(ws.log_dir(missing[0]))
                hint = f" (earlier output: {earlier[-1]})" if earlier else ""
                raise CrowdError(f"agent {missing[0]} has no container, so no live logs; "
                                 f"start it with `crowdtui up {missing[0]}`{hint}")
            width = max(len(n) for n in names)
        else:
            infos = await runtime.list()
            if not infos:
                raise CrowdError("no agent has a container yet; start one with `crowdtui up NAME`")
            width = max(len(i.name) for i in infos)
        merged = len(names) != 1

        def show(line) -> None:
            if wants_json(args):  # JSON Lines, also while following
                print(json.dumps({"name": line.agent, "at": line.at, "text": line.text}), flush=args.follow)
                return
            print(line.format(width) if merged else line.text, flush=args.follow)

        if args.follow:
            async for line in follow_logs(runtime, names, tail=args.tail):
                show(line)
        else:
            for line in await read_logs(runtime, names, tail=args.tail):
                show(line)
    finally:
        runtime.close()
    return 0


async def cmd_stats(args) -> int:
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.stats import collect, human_bytes

    ws = workspace_of(args)
    runtime = Runtime(ws)
    try:
        rows = await collect(runtime)
    finally:
        runtime.close()
    if args.json:
        print_json([r.to_json() for r in rows])
        return 0
    if not rows:
        print("no agent is running")
        return 0
    width = max(4, *(len(r.name) for r in rows))
    print(f"{'NAME':<{width}}  {'CPU %':>7}  {'MEMORY':>10}  {'LIMIT':>10}  {'MEM %':>6}  PIDS")
    for r in rows:
        print(f"{r.name:<{width}}  {r.cpu:>7.1f}  {human_bytes(r.memory):>10}  "
              f"{human_bytes(r.memory_limit):>10}  {r.memory_percent:>6.1f}  {r.pids}")
    return 0
