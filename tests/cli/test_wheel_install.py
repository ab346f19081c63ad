"""A wheel built from the repository installs and runs with no checkout in sight.

The repository's files (those git knows, committed or not) are copied to a temporary
folder, a wheel is built there (``pip wheel --no-deps``: no stale ``build/`` of the
checkout can leak into it), installed into a fresh virtual environment (its dependencies
from the package index), and the installed ``crowdtui`` is run from a folder outside the
checkout: ``init demo``, ``ls --json``, ``image build`` resolving the image's inputs
from the installed package (the same inputs hash to the same tag, so the engine's image is
reused), ``doctor``, and the console itself (in tmux) showing the sample crew.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(argv: list, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_of_the_repository(target: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        source = REPO / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    return target


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path, agent_image):
    source = copy_of_the_repository(tmp_path / "src")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist",
         "."], cwd=source)
    (wheel,) = (tmp_path / "dist").glob("crowdtui-*.whl")
    run([sys.executable, "-m", "venv", tmp_path / "venv"], cwd=tmp_path)
    py = tmp_path / "venv" / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", wheel], cwd=tmp_path, timeout=800)
    crowdtui = tmp_path / "venv" / "bin" / "crowdtui"

    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CROWD_WORKSPACE", "PYTHONPATH", "VIRTUAL_ENV")}
    where = run([py, "-c", "import crowdtui.shipped as s; print(s.shipped_path('docker'))"], cwd=away, env=env)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout  # not the checkout

    init = json.loads(run([crowdtui, "init", "demo", "--json"], cwd=away, env=env).stdout)
    demo = away / "demo"
    assert init["workspace"] == str(demo) and "agents/ (sample roster)" in init["created"]
    assert "crowdtui-sample" not in (demo / "crowd.toml").read_text()  # the template, with its own name
    assert 'name = "demo"' in (demo / "crowd.toml").read_text()
    agents = json.loads(run([crowdtui, "ls", "--json"], cwd=demo, env=env).stdout)
    sample = sorted(p.parent.relative_to(REPO / "agents").name for p in (REPO / "agents").rglob("AGENT.md"))
    assert sorted(a["name"] for a in agents) == sample
    assert all(a["defined"] and a["state"] == "not started" for a in agents)

    # the image's inputs come from the installed package and hash as the checkout's do
    built = json.loads(run([crowdtui, "image", "build", "--json"], cwd=demo, env=env).stdout)
    assert built["tag"] == agent_image
    # and the doctor finds the engine and that image (the hub is not running: a warning only)
    report = json.loads(run([crowdtui, "doctor", "--json"], cwd=demo, env=env).stdout)
    statuses = {c["area"]: c["status"] for c in report["checks"] if c["area"] in ("engine", "image", "hub")}
    assert report["ok"] and statuses == {"engine": "ok", "image": "ok", "hub": "warn"}, report

    # and `crowdtui` in demo opens the console (in tmux), showing the sample crew; q quits
    console_shows_the_crew(crowdtui, demo, env, [a["name"] for a in agents])


def console_shows_the_crew(crowdtui: Path, demo: Path, env: dict, names: list[str]) -> None:
    socket = f"crowdtui-wheel-{os.getpid()}"  # a tmux server of our own

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                              check=True).stdout

    cmd = shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", "-u", "CROWD_WORKSPACE", "-u", "PYTHONPATH",
                      str(crowdtui)])
    tmux("new-session", "-d", "-s", "wheel", "-x", "140", "-y", "40", "-c", str(demo), cmd)
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline and not (all(n in screen for n in names) and "docker ✓" in screen):
            time.sleep(0.2)
            screen = tmux("capture-pane", "-p", "-t", "wheel")
        assert all(n in screen for n in names) and "docker ✓" in screen, screen
        tmux("send-keys", "-t", "wheel", "q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "wheel" in subprocess.run(
                ["tmux", "-L", socket, "list-sessions"], capture_output=True, text=True).stdout:
            time.sleep(0.2)
        assert "wheel" not in subprocess.run(["tmux", "-L", socket, "list-sessions"], capture_output=True,
                                             text=True).stdout, "q did not quit the console"
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
