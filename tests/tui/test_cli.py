"""``crowdtui`` with no command opens the console; outside a workspace it says what to do."""

from __future__ import annotations

import subprocess
import sys


def test_no_workspace_is_one_clear_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "crowdtui"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "crowdtui init" in r.stderr
    assert "Traceback" not in r.stderr


def test_web_help_names_its_options():
    r = subprocess.run([sys.executable, "-m", "crowdtui", "web", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for opt in ("--host", "--port", "--public-url", "--no-hub"):
        assert opt in r.stdout
