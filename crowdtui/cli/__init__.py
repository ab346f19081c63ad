"""The ``crowdtui`` command line.

Each area of the CLI lives in its own module that exposes ``register(subparsers)``.
A handler is ``func(args) -> int`` (or an async function, run with ``asyncio.run``).
Errors a person can act on are ``CrowdError`` / ``qms.QmsError``: printed to stderr as
one line, with a non-zero exit status. Modules import heavy things (textual, docker)
inside handlers only, so ``crowdtui serve`` never loads textual.

The global options (``--workspace``, ``--as``, ``--json``) are accepted before the command
and after it (``crowdtui doc checkout SOP-001 --as lead``): :func:`build_parser` adds them
to every subcommand. With ``--json`` a handler prints its result through
``common.emit`` and an error (usage errors included) is one JSON object on stdout,
``{"error": TEXT, "exit": N}``, besides the usual line on stderr; docs/cli-json.md lists
every command's shape. Interactive commands (``set_defaults(interactive=...)``) refuse
``--json`` that way.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import sys

from crowdtui import __version__
from crowdtui.errors import CrowdError, UsageError
from crowdtui.text_safety import inert
from qms.names import OPERATOR

COMMAND_MODULES = [
    "crowdtui.cli.workspace_cmds",
    "crowdtui.cli.store_cmds",
    "crowdtui.cli.doc_cmds",
    "crowdtui.cli.runtime_cmds",
    "crowdtui.cli.image_cmds",
    "crowdtui.cli.engine_cmds",
    "crowdtui.cli.terminal_cmds",
    "crowdtui.cli.hub_cmds",
    "crowdtui.cli.dispatch_cmds",
    "crowdtui.cli.secret_cmds",
    "crowdtui.cli.approval_cmds",
    "crowdtui.cli.web_cmds",
    "crowdtui.cli.mcp_cmds",
    "crowdtui.cli.completion_cmds",
    "crowdtui.cli.doctor_cmds",
]


class ParseError(Exception):
    """A command line argparse could not parse (its message, without usage)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class CrowdParser(argparse.ArgumentParser):
    """Raises :class:`ParseError` instead of exiting, so ``main`` can answer in JSON."""

    def error(self, message: str):  # noqa: D401 (argparse's name)
        raise ParseError(self, message)


GLOBAL_OPTIONS = (  # (flags, keyword arguments): the options every command accepts
    (("--workspace", "-w"), dict(metavar="DIR", dest="workspace",
                                 help="workspace folder (default: $CROWD_WORKSPACE, else the current folder or a parent)")),
    (("--as",), dict(dest="actor", metavar="NAME",
                     help="act for this agent instead of the operator (recorded as such)")),
    (("--json",), dict(dest="json", action="store_true",
                       help="machine-readable output (shapes: docs/cli-json.md); errors as JSON too")),
)
GLOBAL_DEFAULTS = {"workspace": None, "actor": OPERATOR, "json": False}


def subparsers_of(parser: argparse.ArgumentParser):
    """``(name, subparser)`` for each command directly under ``parser`` (aliases left out)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield name, sub


def walk_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every command of the tree as ``(path, parser)``, leaves and groups alike
    (``("doc",)``, ``("doc", "checkout")``, ...). Completion and the tests use it."""
    for name, sub in subparsers_of(parser):
        yield path + (name,), sub
        yield from walk_commands(sub, path + (name,))


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    """Let every command take the global options after its name too. Their defaults are
    SUPPRESS there, so a value given before the command is not reset by the command."""
    for _path, sub in walk_commands(parser):
        for flags, kwargs in GLOBAL_OPTIONS:
            for action in sub._actions:  # a module's own --json: one meaning, global default
                if action.dest == kwargs["dest"]:
                    action.default = argparse.SUPPRESS
            free = [f for f in flags if f not in sub._option_string_actions]
            if free:
                sub.add_argument(*free, default=argparse.SUPPRESS, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = CrowdParser(
        prog="crowdtui",
        description="Operator console and coordination hub for a crew of AI agents. "
        "With no command, opens the console.",
    )
    parser.add_argument("--version", action="version", version=f"crowdtui {__version__}")
    parser.add_argument("--serve", action="store_true", help="same as `crowdtui serve`")
    for flags, kwargs in GLOBAL_OPTIONS:
        parser.add_argument(*flags, default=GLOBAL_DEFAULTS[kwargs["dest"]], **kwargs)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMAND_MODULES:
        importlib.import_module(mod_name).register(sub)
    _add_global_options(parser)
    return parser


def run_handler(func, args) -> int:
    result = func(args)
    if inspect.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)


GLOBAL_OPTIONS_WITH_VALUE = ("--workspace", "-w", "--as")


def wants_json(argv: list[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--``): errors are then JSON, even
    those argparse finds before any handler runs."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def report_error(message: str, exit_code: int, as_json: bool) -> int:
    """One line on stderr; with --json also ``{"error", "exit"}`` on stdout."""
    print(f"crowdtui: {message}", file=sys.stderr)
    if as_json:
        import json

        sys.stdout.write(json.dumps({"error": message, "exit": exit_code}) + "\n")
        sys.stdout.flush()
    return exit_code


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
    as_json = wants_json(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ParseError as exc:
        if not as_json:
            exc.parser.print_usage(sys.stderr)
        where = exc.parser.prog.partition(" ")[2]  # "doc checkout" ("" for crowdtui itself)
        return report_error(f"{where + ': ' if where else ''}{inert(exc)}", 2, as_json)
    as_json = bool(getattr(args, "json", False))
    func = getattr(args, "func", None)
    if func is None:  # no command: the console when it exists (textual installed), else help
        from crowdtui.cli.tui_cmds import cmd_console, console_available

        if not console_available():
            if as_json:
                return report_error("give a command (`crowdtui --help` lists them)", 2, as_json)
            parser.print_help(sys.stdout)
            return 0
        func = cmd_console
        args.interactive = "the console"
    try:
        if as_json and getattr(args, "interactive", None):
            raise UsageError(f"{args.interactive} is interactive: --json is not available for it")
        return run_handler(func, args)
    except CrowdError as exc:
        return report_error(inert(exc), exc.exit_code, as_json)
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
            return report_error(inert(exc), 1, as_json)
        if not as_json:
            raise
        import traceback  # a bug: the traceback for a person, still one JSON answer for the script

        traceback.print_exc()
        return report_error(inert(f"unexpected error ({type(exc).__name__}: {exc}); this is a bug in "
                                  "crowdtui: please report it with the traceback above"), 1, as_json)
