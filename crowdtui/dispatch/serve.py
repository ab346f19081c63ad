"""What a running dispatch says about itself: ``.crowd/run/serve.json`` (url, pid and the
register key channels need; mode 0600) beside its lock ``.crowd/run/serve.lock``.

The host (``crowdtui.host``) that runs dispatch writes them, whichever entry point
started it (``crowdtui serve``, ``crowdtui hub``, the console, ``crowdtui web``);
``crowdtui channel local`` and the tests read them. Never imports textual.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

INFO_NAME = "serve.json"


def info_path(workspace) -> Path:
    return workspace.crowd_dir / "run" / INFO_NAME


def read_info(workspace) -> dict | None:
    """What the running serve of ``workspace`` wrote about itself (url, pid, register_key),
    or None when none runs (a file left by a killed serve does not count: its lock is free)."""
    if not serve_running(workspace):
        return None
    try:
        data = json.loads(info_path(workspace).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def serve_running(workspace) -> bool:
    """True while some process holds the workspace's serve lock (runs its dispatch)."""
    from crowdtui.process_lock import lock_held

    return lock_held(workspace.crowd_dir / "run" / "serve.lock")


def log_line(line: str) -> None:
    import sys

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} serve: {line}", file=sys.stderr, flush=True)


def write_private(path: Path, data: dict) -> None:
    """Write ``data`` as JSON readable by this user only (it holds the register key)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.write("\n")
    os.replace(tmp, path)
