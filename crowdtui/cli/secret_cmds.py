"""``crowdtui secret set|ls|rm``: secrets are never given as arguments.

``secret set NAME`` reads the value from a hidden prompt when stdin is a terminal,
otherwise from stdin (one trailing newline is dropped).
"""

from __future__ import annotations

import sys
import time

from crowdtui.cli.common import emit, open_store, print_json, workspace_of


def register(sub) -> None:
    p = sub.add_parser("secret", help="encrypted secrets handed to agents (set, ls, rm)")
    ss = p.add_subparsers(dest="secret_cmd", metavar="ACTION", required=True)
    s = ss.add_parser("set", help="set NAME; the value comes from a prompt or stdin, never an argument")
    s.add_argument("name")
    s.set_defaults(func=cmd_set)
    s = ss.add_parser("ls", help="list secret names (never values)")
    s.set_defaults(func=cmd_ls)
    s = ss.add_parser("rm", help="remove a secret")
    s.add_argument("name")
    s.set_defaults(func=cmd_rm)


def _read_value(name: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"value for {name} (hidden): ")
    data = sys.stdin.read()
    return data[:-1] if data.endswith("\n") else data


async def cmd_set(args) -> int:
    from crowdtui.secrets import Vault, validate_secret_name

    validate_secret_name(args.name)
    value = _read_value(args.name)
    async with open_store(args) as store:
        await Vault.open(workspace_of(args), store).set(args.name, value, actor=args.actor)
    emit(args, {"name": args.name, "stored": True}, f"secret {args.name} stored (encrypted)")
    return 0


async def cmd_ls(args) -> int:
    from crowdtui.secrets import Vault

    async with open_store(args) as store:
        names = await Vault.open(workspace_of(args), store).names()
    if args.json:
        print_json([{"name": n, "updated_at": at} for n, at in names])
    elif not names:
        print("no secrets; add one with `crowdtui secret set NAME`")
    else:
        for n, at in names:
            print(f"{n:<32} updated {time.strftime('%Y-%m-%d %H:%M', time.localtime(at))}")
    return 0


async def cmd_rm(args) -> int:
    from crowdtui.secrets import Vault

    async with open_store(args) as store:
        await Vault.open(workspace_of(args), store).remove(args.name, actor=args.actor)
    emit(args, {"name": args.name, "removed": True}, f"secret {args.name} removed")
    return 0
