"""The wheel carries what crowdtui ships besides code (see crowdtui/shipped.py).

pyproject.toml holds the metadata; this only copies the repository's docker/, agents/,
examples/ and crowd.toml into the built package as crowdtui/_shipped/ (modes kept: the
image's inputs hash counts executable bits). Editable installs read them from the
checkout instead.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = ("docker", "agents", "examples", "crowd.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store", "*.swp", "*~")


class BuildWithShipped(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "crowdtui" / "_shipped"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in SHIPPED:
            source = HERE / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORED)
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithShipped})
