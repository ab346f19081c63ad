"""CLI: ``crowdtui engine ls|add|rm|check`` — the Docker engines agents run on.

Engines are ``[engines.NAME]`` tables in crowd.toml (``crowdtui.engine_config``); ``add`` and
``rm`` edit that file's text (the rest of it, comments included, stays as it was). The local
engine is always there as ``local``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from crowdtui.cli.common import emit, inert, print_json, wants_json, workspace_of
from crowdtui.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("engine", help="the Docker engines agents run on (crowd.toml [engines.NAME])")
    esub = p.add_subparsers(dest="engine_command", metavar="ACTION", required=True)

    ls = esub.add_parser("ls", help="list the engines and the agents placed on each")
    ls.set_defaults(func=cmd_ls)

    a = esub.add_parser("add", help="add an engine to crowd.toml",
                        description="Add [engines.NAME] to crowd.toml: a URL (unix:///…, tcp://HOST:2376 "
                        "with TLS files, ssh://user@host:port) or a docker context by name.")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--url", default="", help="unix:///path, tcp://HOST:PORT or ssh://user@host:port")
    a.add_argument("--context", default="", help="a docker context (`docker context ls`) instead of --url")
    a.add_argument("--tls-ca", default="", metavar="FILE", help="CA certificate (tcp://)")
    a.add_argument("--tls-cert", default="", metavar="FILE", help="client certificate (tcp://)")
    a.add_argument("--tls-key", default="", metavar="FILE", help="client key (tcp://)")
    a.add_argument("--label", action="append", default=[], metavar="LABEL",
                   help="a label placement matches with AGENT.md's engine_labels (repeatable)")
    a.add_argument("--mode", default="engine", choices=("engine", "swarm"))
    a.add_argument("--relay-network", default="", metavar="NETWORK",
                   help="the docker network the engine's relay joins (default bridge; host: the engine "
                   "host's network)")
    a.add_argument("--relay-address", default="", metavar="HOST:PORT",
                   help="where this engine's relay reaches the hub's relay door (default [hub] "
                   "relay_address, else the door's listening address)")
    a.add_argument("--check", action="store_true", help="refuse to add it unless it answers now")
    a.set_defaults(func=cmd_add)

    r = esub.add_parser("rm", help="remove an engine from crowd.toml")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--force", action="store_true", help="even when AGENT.md files name it")
    r.set_defaults(func=cmd_rm)

    c = esub.add_parser("check", help="ask each engine (or those named) how it answers")
    c.add_argument("names", nargs="*", metavar="NAME")
    c.set_defaults(func=cmd_check)


def _placed(ws) -> dict[str, list[str]]:
    """engine -> agents whose AGENT.md names it, and those last placed there."""
    from crowdtui.engine_config import engines_of
    from crowdtui.roster import load_roster
    from crowdtui.runtime.engines import recorded_engine

    roster = load_roster(ws)
    out: dict[str, list[str]] = {name: [] for name in engines_of(ws.config, ws.root)}
    for agent in roster:
        where = agent.engine or recorded_engine(ws, agent.name)
        out.setdefault(where, []).append(agent.name)
    return out


async def cmd_ls(args) -> int:
    from crowdtui.engine_config import engines_of

    ws = workspace_of(args)
    placed = _placed(ws)
    rows = [{**spec.to_json(), "agents": sorted(placed.get(name, []))}
            for name, spec in engines_of(ws.config, ws.root).items()]
    if wants_json(args):
        print_json(rows)
        return 0
    width = max(6, *(len(r["name"]) for r in rows))
    print(f"{'ENGINE':<{width}}  {'MODE':<6}  {'WHERE':<40}  AGENTS")
    for r in rows:
        where = r["url"] or f"context {r['context']}"
        print(f"{r['name']:<{width}}  {r['mode']:<6}  {inert(where):<40}  {', '.join(r['agents']) or '-'}")
    return 0


def _config_path(ws):
    return ws.root / "crowd.toml"


async def cmd_add(args) -> int:
    import asyncio

    from crowdtui.engine_config import add_engine_text, parse_engine

    ws = workspace_of(args)
    table = {"url": args.url, "context": args.context, "tls_ca": args.tls_ca, "tls_cert": args.tls_cert,
             "tls_key": args.tls_key, "labels": list(args.label), "mode": args.mode,
             "relay_network": args.relay_network, "relay_address": args.relay_address}
    table = {k: v for k, v in table.items() if v}
    spec = parse_engine(args.name, table, ws.root)
    for key in ("tls_ca", "tls_cert", "tls_key"):
        path = getattr(spec, key)
        if path and not os.path.isfile(path):
            raise UsageError(f"--{key.replace('_', '-')} {path}: no such file")
    if args.check:
        from crowdtui.runtime.engines import connect_spec

        client = await asyncio.to_thread(connect_spec, spec)
        client.close()
    path = _config_path(ws)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(add_engine_text(text, spec), encoding="utf-8")
    emit(args, {**spec.to_json(), "agents": []}, f"engine {spec.name} added ({inert(spec.where())}); "
         f"`crowdtui engine check {spec.name}` asks it how it is")
    return 0


async def cmd_rm(args) -> int:
    from crowdtui.engine_config import EngineConfigError, engines_of, remove_engine_text
    from crowdtui.roster import load_roster

    ws = workspace_of(args)
    specs = engines_of(ws.config, ws.root)
    if args.name not in specs or args.name == "local":
        raise EngineConfigError(f"no engine {args.name!r} in crowd.toml to remove"
                                + ("; the local engine is always there" if args.name == "local" else
                                   f"; the engines are {', '.join(specs)}"))
    naming = sorted(a.name for a in load_roster(ws) if a.engine == args.name)
    if naming and not args.force:
        raise EngineConfigError(f"agents name engine {args.name} (engine: in AGENT.md): {', '.join(naming)}; "
                                "change them first, or pass --force")
    path = _config_path(ws)
    path.write_text(remove_engine_text(path.read_text(encoding="utf-8"), args.name), encoding="utf-8")
    from crowdtui.host_relay import retire_engine

    relay = await asyncio.to_thread(retire_engine, ws, specs[args.name])
    note = "" if relay["relay_error"] is None else \
        f"; its relay could not be removed ({inert(relay['relay_error'])}): its credential is revoked"
    emit(args, {**specs[args.name].to_json(), "agents": naming, "relay": relay},
         f"engine {args.name} removed from crowd.toml{note}")
    return 0


async def cmd_check(args) -> int:
    import asyncio

    from crowdtui.runtime.engines import Engines

    ws = workspace_of(args)
    engines = Engines(ws)
    try:
        names = list(dict.fromkeys(args.names)) or engines.names()
        for name in names:
            engines.spec(name)  # an unknown name is an error before anything is asked
        rows = await asyncio.gather(*(asyncio.to_thread(engines.check, name) for name in names))
    finally:
        engines.close()
    if wants_json(args):
        print_json(list(rows))
        return 0 if all(r["ok"] for r in rows) else 1
    for r in rows:
        if r["ok"]:
            free = f", {r['free_memory'] // 2**20} MiB free" if r["free_memory"] is not None else ""
            print(f"{r['name']}: ok — Docker {r['version']}, {r['containers']} containers{free} ({r['ms']} ms)")
        else:
            print(f"{r['name']}: does not answer — {inert(r['error'] or '')}", file=sys.stderr)
    return 0 if all(r["ok"] for r in rows) else 1
