"""A workspace: a folder with ``crowd.toml``, the roster in ``agents/`` and state in ``.crowd/``.

Commands find it from ``--workspace DIR``, then ``CROWD_WORKSPACE``, then the current
folder and its parents.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from crowdtui.errors import WorkspaceNotFound

CONFIG_NAME = "crowd.toml"

def sample_roster_dir() -> Path:
    """The sample roster shipped with crowdtui (``agents/``; see :mod:`crowdtui.shipped`)."""
    from crowdtui.shipped import shipped_path

    return shipped_path("agents")


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return str(self.config.get("workspace", {}).get("name") or self.root.name)

    @property
    def id(self) -> str:
        """A short stable id for this workspace, used in container labels and names."""
        return hashlib.sha256(str(self.root).encode()).hexdigest()[:12]

    @property
    def crowd_dir(self) -> Path:
        return self.root / ".crowd"

    @property
    def db_path(self) -> Path:
        return self.crowd_dir / "crowd.db"

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents"

    def home_dir(self, agent: str) -> Path:
        return self.crowd_dir / "homes" / agent

    def ipc_dir(self, agent: str) -> Path:
        return self.crowd_dir / "ipc" / agent

    def log_dir(self, agent: str) -> Path:
        return self.crowd_dir / "logs" / agent

    async def open_store(self):
        """The workspace's store (``qms.Store``, migrated) with crowd.toml's ``[quotas]`` and
        ``[documents]`` set: every process opens it this way, so an agent meets the same
        limits and document rules at every door."""
        from qms import Store

        store = await Store.open(self.db_path)
        try:
            self.configure_store(store)
        except BaseException:
            await store.close()
            raise
        return store

    def configure_store(self, store) -> None:
        """Set crowd.toml's ``[quotas]``, ``[documents]`` and ``[approvals]`` on an open store (the one home of
        that rule: ``open_store`` and the hub use it)."""
        from qms.policy import DocPolicy

        from qms.permissions import timeout_from_config

        store.quotas = self.quotas()
        store.doc_policy = DocPolicy.from_config(self.config.get("documents"))
        store.permission_timeout = timeout_from_config(self.config.get("approvals"))

    def quotas(self):
        """The per-agent limits of ``[quotas]`` in crowd.toml (qms.quotas.Quotas; defaults
        for keys not given). Every process that opens the store for agents sets them."""
        from qms.quotas import Quotas

        return Quotas.from_config(self.config.get("quotas"))

    def setting(self, section: str, key: str, default=None):
        return self.config.get(section, {}).get(key, default)

    def dispatch_port(self) -> int:
        """``[dispatch] port`` in crowd.toml; ``[engine] port`` (its old name) when the
        ``[dispatch]`` section is absent; 0 (any free port) when neither says."""
        section = self.config.get("dispatch", self.config.get("engine", {}))
        return int(section.get("port", 0) or 0)

    def ensure_dirs(self) -> None:
        for sub in ("homes", "ipc", "logs", "run"):
            (self.crowd_dir / sub).mkdir(parents=True, exist_ok=True)


def load_workspace(root: Path) -> Workspace:
    root = root.resolve()
    cfg_path = root / CONFIG_NAME
    if not cfg_path.is_file():
        raise WorkspaceNotFound(
            f"{root} is not a crowdtui workspace (no {CONFIG_NAME}); run `crowdtui init {root}`"
        )
    try:
        config = tomllib.loads(cfg_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceNotFound(f"{cfg_path}: {exc}; fix the file or remove it") from exc
    ws = Workspace(root=root, config=config)
    ws.ensure_dirs()
    return ws


def find_workspace(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Workspace:
    """Find the workspace: explicit path, then $CROWD_WORKSPACE, then cwd upwards."""
    if explicit:
        return load_workspace(Path(explicit))
    env = os.environ.get("CROWD_WORKSPACE")
    if env:
        return load_workspace(Path(env))
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return load_workspace(folder)
    raise WorkspaceNotFound(
        f"no crowdtui workspace in {here} or its parents; run `crowdtui init` "
        "or pass --workspace DIR"
    )


def init_workspace(root: Path, *, sample: bool = True) -> tuple[Workspace, list[str]]:
    """Create (or complete) a workspace; returns it and what was created. Idempotent."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    created: list[str] = []
    cfg = root / CONFIG_NAME
    if not cfg.exists():
        from crowdtui.shipped import config_template

        cfg.write_text(config_template(root.name), encoding="utf-8")
        created.append(CONFIG_NAME)
    agents = root / "agents"
    if not agents.exists():
        src = sample_roster_dir() if sample else None
        if sample and not src.is_dir():
            raise WorkspaceNotFound(
                f"the sample roster is not at {src} (a broken installation); run "
                "`crowdtui init --empty`, or reinstall crowdtui (`pipx install ./dist/crowdtui-*.whl`)"
            )
        if sample and src.resolve() != agents.resolve():
            shutil.copytree(src, agents)
            created.append("agents/ (sample roster)")
        else:
            agents.mkdir()
            created.append("agents/")
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text(".crowd/\n")
        created.append(".gitignore")
    if not (root / ".crowd").exists():
        created.append(".crowd/")
    ws = load_workspace(root)
    return ws, created
