"""Helpers shared by the CLI modules."""

from __future__ import annotations

import json
import sys
from contextlib import asynccontextmanager
from typing import Any

from crowdtui.text_safety import inert  # noqa: F401  (the CLI modules import it from here)
from crowdtui.workspace import Workspace, find_workspace


def workspace_of(args) -> Workspace:
    return find_workspace(getattr(args, "workspace", None))


@asynccontextmanager
async def open_store(args):
    """Open the workspace's store (migrated) for one CLI command."""

    ws = workspace_of(args)
    store = await ws.open_store()
    try:
        yield store
    finally:
        await store.close()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def wants_json(args) -> bool:
    """Whether ``--json`` was given (before or after the command)."""
    return bool(getattr(args, "json", False))


def emit(args, data: Any, *lines: str) -> None:
    """A command's result: ``data`` as JSON with ``--json`` (shapes: docs/cli-json.md),
    else ``lines`` as text (callers make agent-supplied text inert)."""
    if wants_json(args):
        print_json(data)
        return
    for line in lines:
        print(line)


def note(args, line: str) -> None:
    """A remark for a person: stdout in text mode, stderr with ``--json`` (stdout is JSON)."""
    print(line, file=sys.stderr if wants_json(args) else sys.stdout)


AGENT_NAMES = "agents"  # an argument's ``completer``: shell completion offers the roster's names


def completes_agents(action):
    """Mark an argument (``add_argument``'s result) as an agent name, for shell completion."""
    action.completer = AGENT_NAMES
    return action
