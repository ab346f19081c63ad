"""CLI: ``crowdtui image build|ls|tag`` — the agent image (and runners' images), built without a registry."""

from __future__ import annotations

import sys

from crowdtui.cli.common import emit, print_json, wants_json


def register(sub) -> None:
    p = sub.add_parser("image", help="build and inspect the agent image")
    isub = p.add_subparsers(dest="image_command", metavar="ACTION")
    p.set_defaults(func=_help(p))

    b = isub.add_parser(
        "build",
        help="build the agent image with no registry (debootstrap base + docker/Dockerfile)",
        description="Build the agent image: a Debian root filesystem made with debootstrap, "
        "imported into the engine, then docker/Dockerfile on top. Tagged by a hash of its "
        "inputs; does nothing when that image exists.",
    )
    b.add_argument("--force", action="store_true",
                   help="rebuild everything, including the root filesystem")
    b.add_argument("--runner", metavar="NAME", default=None,
                   help="also put a runner's program in a layer on top (claude-code, codex, gemini); its "
                   "npm packages are fetched on this machine with its own npm and cached by version")
    b.add_argument("--upgrade", action="store_true",
                   help="with --runner: move the runner's pinned versions in crowd.toml to the newest")
    b.set_defaults(func=cmd_build)

    ls = isub.add_parser("ls", help="list agent and base images in the engine")
    ls.set_defaults(func=cmd_ls)

    t = isub.add_parser("tag", help="print the tag the current docker/ inputs build to")
    t.set_defaults(func=cmd_tag)

    pr = isub.add_parser("prune", help="remove agent images of older inputs that no container uses")
    pr.set_defaults(func=cmd_prune)


def _help(parser):
    def show(args) -> int:
        if wants_json(args):
            from crowdtui.errors import UsageError

            raise UsageError("image needs an action: build, ls, tag or prune")
        parser.print_help()
        return 2

    return show


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


def _progress_err(line: str) -> None:  # with --json: stdout holds only the answer
    print(f"  {line}", file=sys.stderr, flush=True)


def _progress_for(args):
    return _progress_err if wants_json(args) else _progress


def cmd_build(args) -> int:
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.image import ensure_image

    if args.runner is not None or args.upgrade:
        return _build_runner(args)
    client = connect(timeout=600)
    try:
        tag = ensure_image(client, progress=_progress_for(args), force=args.force)
        emit(args, {"tag": tag, "runner": None}, tag)
        return 0
    finally:
        client.close()


def _build_runner(args) -> int:
    """``image build --runner NAME [--upgrade]``: pins from the workspace's crowd.toml (if any)."""
    from crowdtui.errors import WorkspaceNotFound
    from crowdtui.runners import runner_named, runner_settings
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.runner_image import ensure_runner_image, newest_versions, pin_versions
    from crowdtui.workspace import CONFIG_NAME, find_workspace

    if args.runner is None:
        from crowdtui.errors import UsageError

        raise UsageError("image build --upgrade needs --runner NAME")
    runner = runner_named(args.runner)
    try:
        ws = find_workspace(getattr(args, "workspace", None))
    except WorkspaceNotFound:
        ws = None
    if args.upgrade:
        if ws is None:
            from crowdtui.errors import UsageError

            raise UsageError("image build --upgrade: no workspace here to pin versions in; run it in a "
                             "workspace or pass --workspace DIR")
        pins = newest_versions(runner)
        pin_versions(ws.root / CONFIG_NAME, runner, pins)
        _progress_for(args)(f"pinned in {CONFIG_NAME}: " + ", ".join(f"{k} = {v}" for k, v in pins.items()))
        ws = find_workspace(ws.root)
    settings = runner_settings(ws.config if ws else None, runner.name)
    client = connect(timeout=1800)
    try:
        tag = ensure_runner_image(client, runner, settings, progress=_progress_for(args), force=args.force)
        emit(args, {"tag": tag, "runner": runner.name}, tag)
        return 0
    finally:
        client.close()


def cmd_ls(args) -> int:
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.image import list_images

    client = connect()
    try:
        rows = list_images(client)
    finally:
        client.close()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no agent image yet; run `crowdtui image build`", file=sys.stderr)
        return 0
    for row in rows:
        mark = "*" if row["current"] else " "
        print(f"{mark} {row['id']:<12} {row['size_mb']:>8.1f} MB  {', '.join(row['tags'])}")
    return 0


def cmd_tag(args) -> int:
    from crowdtui.runtime.image import image_tag

    tag = image_tag()
    emit(args, {"tag": tag}, tag)
    return 0


def cmd_prune(args) -> int:
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.image import prune_images

    client = connect()
    try:
        removed = prune_images(client, progress=_progress_for(args))
    finally:
        client.close()
    emit(args, {"removed": removed}, f"removed {len(removed)} older agent image(s)")
    return 0
