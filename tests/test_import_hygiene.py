"""Boundaries from DESIGN.md, checked in fresh interpreters.

- ``qms`` loads neither textual, docker nor crowdtui.
- crowdtui's headless modules (everything outside ``crowdtui.tui``) never load textual,
  so ``crowdtui serve`` and the hub run without it.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import crowdtui
import qms


def _modules(package) -> list[str]:
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        names.append(info.name)
    return sorted(names)


def _loaded_after_import(module: str) -> set[str]:
    code = (
        "import importlib, json, sys; "
        f"importlib.import_module({module!r}); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr}"
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


QMS_MODULES = _modules(qms)
HEADLESS_MODULES = [
    m for m in _modules(crowdtui) if not m.startswith("crowdtui.tui") and not m.endswith("__main__")
]


@pytest.mark.parametrize("module", QMS_MODULES)
def test_qms_loads_no_ui_docker_or_app(module):
    loaded = _loaded_after_import(module)
    assert not loaded & {"textual", "docker", "crowdtui", "rich"}, (
        f"{module} pulled in {sorted(loaded & {'textual', 'docker', 'crowdtui', 'rich'})}"
    )


@pytest.mark.parametrize("module", HEADLESS_MODULES)
def test_headless_modules_never_load_textual(module):
    loaded = _loaded_after_import(module)
    assert "textual" not in loaded, f"{module} loads textual; only crowdtui.tui may"


def test_cli_parser_builds_without_textual():
    """Building the whole CLI (every command module) must not load textual."""
    code = (
        "import sys, crowdtui.cli as c; c.build_parser(); "
        "print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_check_itself_can_fail():
    """Guard against a hygiene check that cannot fail: the TUI package does load textual."""
    try:
        import crowdtui.tui.app  # noqa: F401
    except ImportError:
        pytest.skip("crowdtui.tui.app not present")
    assert "textual" in _loaded_after_import("crowdtui.tui.app")
