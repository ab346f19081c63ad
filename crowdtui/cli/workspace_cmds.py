"""``crowdtui init`` and the default command."""

from __future__ import annotations

from pathlib import Path

from crowdtui.workspace import init_workspace


def register(sub) -> None:
    p = sub.add_parser("init", help="create a workspace (crowd.toml, agents/, .crowd/)")
    p.add_argument("dir", nargs="?", default=".", help="folder (default: current)")
    p.add_argument("--empty", action="store_true", help="no sample roster")
    p.add_argument("--with", dest="with_runner", metavar="RUNNER", default=None,
                   help="add a sample crew member run by RUNNER (claude-code: agents/claude from examples/claude)")
    p.set_defaults(func=cmd_init)


EXAMPLES = {"claude-code": ("claude", "claude")}  # runner -> (examples/ folder, agents/ folder)


async def cmd_init(args) -> int:
    from crowdtui.errors import UsageError

    if args.with_runner is not None and args.with_runner not in EXAMPLES:
        raise UsageError(f"no sample for runner {args.with_runner!r}; --with takes {', '.join(EXAMPLES)}")
    ws, created = init_workspace(Path(args.dir), sample=not args.empty)
    if args.with_runner is not None:
        created += _add_example(ws, args.with_runner)
    store = await ws.open_store()
    await store.close()
    from crowdtui.cli.common import emit, note

    emit(args, {"workspace": str(ws.root), "created": created},
         f"initialised workspace {ws.root}: created {', '.join(created)}" if created
         else f"workspace {ws.root} already initialised")
    if args.with_runner is not None:
        from crowdtui.runners import runner_named

        runner = runner_named(args.with_runner)
        note(args, f"next: `crowdtui image build --runner {runner.name}`, then "
              f"`crowdtui secret set {runner.secret}`, then start it (`s` in the console)")
    return 0


def _add_example(ws, runner: str) -> list[str]:
    """Copy examples/<folder> into agents/ (kept when it is there already)."""
    import shutil

    from crowdtui.errors import UsageError

    source_name, target_name = EXAMPLES[runner]
    from crowdtui.shipped import shipped_path

    source = shipped_path("examples") / source_name
    if not (source / "AGENT.md").is_file():
        raise UsageError(f"the sample {source} is missing; reinstall crowdtui")
    target = ws.agents_dir / target_name
    if target.exists():
        return []
    shutil.copytree(source, target)
    return [f"agents/{target_name}/ (runner {runner})"]

