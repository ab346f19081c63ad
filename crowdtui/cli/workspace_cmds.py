"""``crowdtui init`` and the default command."""

from __future__ import annotations

import sys
from pathlib import Path

from crowdtui.workspace import init_workspace


def register(sub) -> None:
    p = sub.add_parser("init", help="create a workspace (crowd.toml, agents/, .crowd/)")
    p.add_argument("dir", nargs="?", default=".", help="folder (default: current)")
    p.add_argument("--empty", action="store_true", help="no sample roster")
    p.set_defaults(func=cmd_init)


async def cmd_init(args) -> int:

    ws, created = init_workspace(Path(args.dir), sample=not args.empty)
    store = await ws.open_store()
    await store.close()
    if created:
        print(f"initialised workspace {ws.root}: created {', '.join(created)}")
    else:
        print(f"workspace {ws.root} already initialised")
    return 0


def default_command(args) -> int:
    """``crowdtui`` with no command: the console when it exists, else help."""
    try:
        from crowdtui.tui.app import run_app  # noqa: F401
    except ImportError:
        from crowdtui.cli import build_parser

        build_parser().print_help(sys.stdout)
        return 0
    return run_app(args)
