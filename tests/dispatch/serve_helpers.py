"""Running `crowdtui serve` and the CLI as real subprocesses for dispatch tests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs serve through the real CLI, then reports whether textual was ever imported.
SERVE_PROBE = (
    "import sys\n"
    "from crowdtui.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('TEXTUAL_LOADED=%s' % ('textual' in sys.modules), flush=True)\n"
    "raise SystemExit(rc)\n"
)


def write_agent(ws, name: str, front: str = "", body: str = "A test agent.") -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(f"---\nname: {name}\ndescription: test agent {name}\n{front}---\n{body}\n")


def start_serve(ws, *extra: str) -> subprocess.Popen:
    info = ws.crowd_dir / "run" / "serve.json"
    try:
        info.unlink()
    except FileNotFoundError:
        pass
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", SERVE_PROBE, "--workspace", str(ws.root), "serve", *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


async def wait_ready(ws, proc: subprocess.Popen, timeout: float = 60) -> dict:
    info = ws.crowd_dir / "run" / "serve.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            data = json.loads(info.read_text())
            if data.get("pid") == proc.pid:
                return data
        except (OSError, ValueError):
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("serve did not become ready")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def cli(ws, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(ws.root), *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout, cwd=REPO)
