"""What crowdtui ships besides its code, and the one place that finds it.

- ``docker``: the agent image's build inputs (Dockerfile, ``bin/``);
- ``agents``: the sample roster ``crowdtui init`` copies;
- ``examples``: the runners' sample crew members (``crowdtui init --with claude-code``);
- ``crowd.toml``: the workspace configuration, the template of a new workspace's.

In a source checkout (and an editable install of it) these are the repository's own
files. A wheel carries copies under ``crowdtui/_shipped/`` (``setup.py`` puts them there
when it builds), so an installed crowdtui needs no checkout. Nothing else in crowdtui
reads these paths relative to the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from crowdtui.errors import CrowdError

ITEMS = ("docker", "agents", "examples", "crowd.toml")
PACKAGED = Path(__file__).resolve().parent / "_shipped"  # in a wheel
CHECKOUT = Path(__file__).resolve().parent.parent  # the repository, when run from it


class ShippedFileMissing(CrowdError):
    """A file crowdtui ships is not where it should be (a broken installation)."""


def shipped_path(name: str) -> Path:
    """Where ``name`` (one of :data:`ITEMS`) is: in the package when installed from a wheel,
    else in the source checkout."""
    if name not in ITEMS:
        raise ValueError(f"crowdtui ships no {name!r}; it ships {', '.join(ITEMS)}")
    if (PACKAGED / name).exists():
        return PACKAGED / name
    # the checkout only: beside an installed package lies site-packages (with docker-py's docker/)
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / name).exists():
        return CHECKOUT / name
    raise ShippedFileMissing(
        f"crowdtui's {name} is neither in the package ({PACKAGED}) nor in a source checkout "
        f"({CHECKOUT}); reinstall crowdtui from its wheel (`pipx install ./dist/crowdtui-*.whl`) "
        "or run `make setup` in its checkout"
    )


def config_template(workspace_name: str) -> str:
    """A new workspace's ``crowd.toml``: the shipped one (every key with its default and
    the runners' pinned versions) with the workspace's own name, without the lines
    before its first ``# crowdtui workspace configuration`` comment (they speak of the
    repository)."""
    text = shipped_path("crowd.toml").read_text(encoding="utf-8")
    start = text.find("# crowdtui workspace configuration")
    text = text[start:] if start >= 0 else text
    # a TOML basic string: JSON's escapes (\", \\, \uXXXX) are TOML's too
    name = json.dumps(workspace_name, ensure_ascii=False)
    text, n = re.subn(r'(?m)^name = ".*"$', lambda _m: f"name = {name}", text, count=1)
    if n != 1:
        raise ShippedFileMissing(f"{shipped_path('crowd.toml')} has no `name = \"...\"` line under [workspace]")
    return text
