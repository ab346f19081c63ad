"""CLI: ``crowdtui image build|ls|tag`` — the agent image, built without a registry."""

from __future__ import annotations

import sys

from crowdtui.cli.common import print_json


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
    b.set_defaults(func=cmd_build)

    ls = isub.add_parser("ls", help="list agent and base images in the engine")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_ls)

    t = isub.add_parser("tag", help="print the tag the current docker/ inputs build to")
    t.set_defaults(func=cmd_tag)

    pr = isub.add_parser("prune", help="remove agent images of older inputs that no container uses")
    pr.set_defaults(func=cmd_prune)


def _help(parser):
    def show(args) -> int:
        parser.print_help()
        return 2

    return show


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


def cmd_build(args) -> int:
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.image import ensure_image

    client = connect(timeout=600)
    try:
        print(ensure_image(client, progress=_progress, force=args.force))
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

    print(image_tag())
    return 0


def cmd_prune(args) -> int:
    from crowdtui.runtime.engine import connect
    from crowdtui.runtime.image import prune_images

    client = connect()
    try:
        removed = prune_images(client, progress=_progress)
    finally:
        client.close()
    print(f"removed {len(removed)} older agent image(s)")
    return 0
