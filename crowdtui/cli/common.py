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
