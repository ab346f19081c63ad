"""The ``crowdtui`` command line.

Each area of the CLI lives in its own module that exposes ``register(subparsers)``.
A handler is ``func(args) -> int`` (or an async function, run with ``asyncio.run``).
Errors a person can act on are ``CrowdError`` / ``qms.QmsError``: printed to stderr as
one line, with a non-zero exit status. Modules import heavy things (textual, docker)
inside handlers only, so ``crowdtui serve`` never loads textual.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys

from crowdtui import __version__
from crowdtui.errors import CrowdError
from crowdtui.text_safety import inert
from qms.names import OPERATOR

COMMAND_MODULES = [
    "crowdtui.cli.workspace_cmds",
    "crowdtui.cli.store_cmds",
    "crowdtui.cli.doc_cmds",
    "crowdtui.cli.runtime_cmds",
    "crowdtui.cli.image_cmds",
    "crowdtui.cli.terminal_cmds",
    "crowdtui.cli.hub_cmds",
    "crowdtui.cli.dispatch_cmds",
    "crowdtui.cli.secret_cmds",
    "crowdtui.cli.web_cmds",
    "crowdtui.cli.mcp_cmds",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crowdtui",
        description="Operator console and coordination hub for a crew of AI agents. "
        "With no command, opens the console.",
    )
    parser.add_argument("--version", action="version", version=f"crowdtui {__version__}")
    parser.add_argument("--serve", action="store_true", help="same as `crowdtui serve`")
    parser.add_argument(
        "--workspace", "-w", metavar="DIR", default=None,
        help="workspace folder (default: $CROWD_WORKSPACE, else the current folder or a parent)",
    )
    parser.add_argument(
        "--as", dest="actor", metavar="NAME", default=OPERATOR,
        help="act for this agent instead of the operator (recorded as such)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        importlib.import_module(mod_name).register(sub)
    return parser


def run_handler(func, args) -> int:
    result = func(args)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)


GLOBAL_OPTIONS_WITH_VALUE = ("--workspace", "-w", "--as")


def rewrite_serve(argv: list[str]) -> list[str]:
    """`crowdtui [GLOBAL OPTIONS] --serve [OPTIONS]` is `crowdtui ... serve [OPTIONS]`.

    Only a ``--serve`` among the global options (before the command) is the flag: the
    same text later on is an argument of its own (`crowdtui send lead -- --serve`).
    """
    argv = list(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--serve":
            argv[i] = "serve"
            break
        if arg in GLOBAL_OPTIONS_WITH_VALUE:  # its value may be any text, even "--serve"
            i += 2
        elif arg.startswith("-") and arg not in ("-", "--"):  # --version, -wDIR, --as=NAME...
            i += 1
        else:  # the command (or "--"): options after it are not ours
            break
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = rewrite_serve(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:  # no command: the console when it exists (textual installed), else help
        from crowdtui.cli.tui_cmds import cmd_console, console_available

        if not console_available():
            parser.print_help(sys.stdout)
            return 0
        func = cmd_console
    try:
        return run_handler(func, args)
    except CrowdError as exc:
        print(f"crowdtui: {inert(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `crowdtui ls --json | head`: the reader left; not an error
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as exc:  # the store's own errors carry operator-facing text too
        from qms.errors import QmsError

        if isinstance(exc, QmsError):
            print(f"crowdtui: {inert(exc)}", file=sys.stderr)
            return 1
        raise
