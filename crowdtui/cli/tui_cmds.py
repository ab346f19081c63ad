"""The console: what ``crowdtui`` runs with no command (``crowdtui web`` serves it in a
browser: ``crowdtui.cli.web_cmds``). Headless until the console runs: textual loads then."""

from __future__ import annotations

import importlib.util


def console_available() -> bool:
    """True when textual is installed (without it, ``crowdtui`` prints its help instead)."""
    return importlib.util.find_spec("textual") is not None


def cmd_console(args) -> int:
    from crowdtui.cli.common import workspace_of
    from crowdtui.tui.app import run_app

    return run_app(workspace_of(args))
