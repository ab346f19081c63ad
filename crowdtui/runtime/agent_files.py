"""How an engine gets an agent's files and its hub door: the seam between the runtime and
where the agent runs.

The local engine sees the host's folders: the agent's home, IPC folder (its hub door,
``mcp.sock``), persona and skills are bind mounts of folders under ``.crowd/``
(:class:`BindFiles`, what crowdtui always did). A remote engine cannot: the agent's home and
IPC folder are named volumes on that engine, and the persona, skills and the runner's MCP
configuration are copied into the home at start (:class:`VolumeFiles`, with ``put_archive``
into the created container, before it starts).

The hub door of a remote agent is not a host socket: the engine's relay holds one socket per
agent in that agent's own IPC volume (``crowdtui.runtime.relay_container``).
``VolumeFiles(door=…)`` takes the host's ``RelayHookup`` (the hub's address and the engine's
credential): the relay is started on the engine before the agent and the agent's
``/run/crowd`` is its relay volume; without one the agent runs without a hub door.

Secrets and ``network: allowlist`` go through the same relay: the relay holds ``secrets.sock``
while the hub has the agent's values on offer (``secrets_handoff.RelayedHandoff``) and
``egress.sock`` for its egress proxy, which runs on the host and applies the agent's list.
Without a relay (a start made without a host's hub) both are refused; on a Swarm both stay
refused (its agents' doors are the relays of its nodes: ``crowdtui.runtime.swarm.SwarmFiles``). What
a remote engine cannot have at all — the definition's own host mounts, a writable workspace
(host folders it cannot see) — is refused at start with the reason, never half done.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from crowdtui.agent_folder import AGENT_GID, AGENT_UID, AgentFolder
from crowdtui.roster import AgentDef
from crowdtui.runners import effective, runner_for, runner_settings
from crowdtui.runtime import container_spec, labels
from crowdtui.runtime.container_info import ContainerFailed, check_name
from crowdtui.runtime.container_spec import HOME, IPC, WORKSPACE_MOUNT
from crowdtui.workspace import Workspace


class AgentFiles(Protocol):
    """What the runtime asks of an engine's way with files (see the module's doc)."""

    kind: str  # "bind" | "volume"

    def check(self, agent: AgentDef) -> None:
        """Raise ``ContainerFailed`` for what the definition asks that this engine cannot give."""

    def mounts(self, agent: AgentDef) -> list:
        """The container's mounts (``docker.types.Mount``)."""

    def prepare(self, agent: AgentDef, client, findings: list | None) -> None:
        """Before the container is created: host folders, or the engine's volumes."""

    def after_create(self, agent: AgentDef, container) -> None:
        """After create, before start: copy what the container needs (nothing for binds)."""

    def hub_door(self, agent: str) -> str | None:
        """Where the agent's MCP door is, as the hub serves it; None: not served yet."""

    def handoff(self, agent: AgentDef, secrets: dict[str, str]) -> Any:
        """The one-shot secrets hand-off for this engine (``crowdtui.runtime.secrets_handoff``)."""


class BindFiles:
    """The local engine: bind mounts of ``.crowd/`` folders (home, IPC, persona, skills)."""

    kind = "bind"

    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def check(self, agent: AgentDef) -> None:
        return None

    def mounts(self, agent: AgentDef) -> list:
        return container_spec.bind_mounts(self.workspace, agent)

    def prepare(self, agent: AgentDef, client, findings: list | None) -> None:
        container_spec.prepare_host(self.workspace, agent, findings)

    def after_create(self, agent: AgentDef, container) -> None:
        return None

    def hub_door(self, agent: str) -> str | None:
        return str(self.workspace.ipc_dir(agent) / "mcp.sock")

    def handoff(self, agent: AgentDef, secrets: dict[str, str]) -> Any:
        from crowdtui.runtime.secrets_handoff import SecretHandoff

        return SecretHandoff(self.workspace.ipc_dir(agent.name), secrets, agent=agent.name)


def volume_name(workspace: Workspace, agent: str, what: str) -> str:
    """``crowd-<workspace id>-<agent>-<what>`` (``home``, ``ipc``); ``-workspace`` for the shared one."""
    return f"crowd-{workspace.id[:12]}-{agent}-{what}" if agent else f"crowd-{workspace.id[:12]}-{what}"


class VolumeFiles:
    """A remote engine: the home and IPC folder are named volumes there; persona, skills and
    MCP configuration are copied into the home at start. ``door`` (a
    ``relay_container.RelayHookup``, or None: no hub door) gives the agent's IPC volume."""

    kind = "volume"

    def __init__(self, workspace: Workspace, engine: str, door: Any = None):
        self.workspace = workspace
        self.engine = engine
        self.door = door

    def check(self, agent: AgentDef) -> None:
        why, relayed = [], []
        if agent.secrets and getattr(self.door, "secrets", None) is None:
            relayed.append("secrets")
        if agent.network == "allowlist" and self.door is None:
            relayed.append("network: allowlist")
        if relayed:
            why.append(f"{' or '.join(relayed)} without the engine's relay, which this start has none of (a host "
                       "with a hub wires it: start the agent from the console, or let `crowdtui serve` / "
                       "`crowdtui hub` start it)")
        if agent.mounts:
            why.append("mounts (host folders it cannot see)")
        if agent.workspace_mode == "rw":
            why.append("workspace: rw (the host's workspace folder, which it cannot see)")
        if why:
            raise ContainerFailed(
                f"agent {agent.name}: on engine {self.engine} (a remote engine) it cannot have "
                f"{'; '.join(why)}; place it on the local engine (engine: local) or remove them")

    def mounts(self, agent: AgentDef) -> list:
        from docker.types import Mount

        from crowdtui.runtime.relay_container import agent_ipc_volume_name

        name = check_name(agent.name)
        ipc = (agent_ipc_volume_name(self.workspace, name) if self.door is not None
               else volume_name(self.workspace, name, "ipc"))
        return [
            Mount(HOME, volume_name(self.workspace, name, "home"), type="volume"),
            Mount(IPC, ipc, type="volume"),
            Mount(WORKSPACE_MOUNT, volume_name(self.workspace, "", "workspace"), type="volume",
                  read_only=True),
        ]

    def _labels(self, agent: str) -> dict[str, str]:
        return {labels.WORKSPACE: self.workspace.id, labels.AGENT: agent, labels.ENGINE: self.engine}

    def prepare(self, agent: AgentDef, client, findings: list | None) -> None:
        from docker.errors import NotFound

        if self.door is not None:  # the engine's relay first: it makes the agent's IPC volume
            self.door.prepare(client, self.workspace, self.engine, check_name(agent.name))
        for mount in self.mounts(agent):
            if mount["Target"] == IPC and self.door is not None:
                continue
            try:
                client.volumes.get(mount["Source"])
            except NotFound:
                owner = agent.name if mount["Target"] != WORKSPACE_MOUNT else ""
                client.volumes.create(mount["Source"], labels=self._labels(owner))

    def relay_engine(self, container) -> str:
        """The engine whose relay holds the agent's doors (this one; a Swarm's: the task's node)."""
        return self.engine

    def after_create(self, agent: AgentDef, container) -> None:
        if self.door is not None:  # its doors held by the relay before it starts (placement is recorded now)
            self.door.open_doors(self.relay_engine(container), check_name(agent.name))
        data = home_archive(self.workspace, agent)
        saved = saved_home_path(self.workspace, agent.name)  # for a container made without us
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(data)
        if not container.put_archive(HOME, data):
            raise ContainerFailed(f"agent {agent.name}: the engine {self.engine} refused its files")

    def hub_door(self, agent: str) -> str | None:
        return f"relay:{self.engine}" if self.door is not None else None

    def handoff(self, agent: AgentDef, secrets: dict[str, str]) -> Any:
        from crowdtui.runtime.secrets_handoff import RelayedHandoff

        return RelayedHandoff(self.door.offer_secrets, self.engine, secrets, agent=agent.name)


def saved_home_path(workspace: Workspace, agent: str) -> Path:
    """The last files copied into ``agent``'s home volume (a tar), kept for a container the
    engine makes on its own (a Swarm task moved to another node)."""
    return workspace.crowd_dir / "run" / "homes" / f"{check_name(agent)}.tar"


def copy_saved_home(workspace: Workspace, agent: str, container) -> bool:
    """Copy the saved files into ``container``'s home; False when none were saved."""
    try:
        data = saved_home_path(workspace, agent).read_bytes()
    except OSError:
        return False
    return bool(container.put_archive(HOME, data))


def home_archive(workspace: Workspace, agent: AgentDef) -> bytes:
    """A tar of what the agent's home gets at start: persona, skills and the runner's own
    files (MCP configuration), owned by the agent user, paths relative to its home."""
    name = check_name(agent.name)
    agent = effective(agent, workspace.config)
    runner = runner_for(agent)
    persona_rel = container_spec.home_relative(runner.persona_target)
    with tempfile.TemporaryDirectory(prefix=f"crowd-home-{name}-") as tmp:
        staged = Path(tmp) / "home"
        staged.mkdir()
        home = AgentFolder(staged, agent=name, label="home", owner=None)
        home.ensure_dir(".claude")
        runner.seed_home(home, agent, runner_settings(workspace.config, runner.name))
        target = staged / persona_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(agent.persona, encoding="utf-8")
        for skill, text in agent.skills.items():
            folder = staged / ".claude" / "skills" / skill
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "SKILL.md").write_text(text, encoding="utf-8")
        return _tar(staged)


def _tar(root: Path) -> bytes:
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                continue  # what was staged here is ours; a link is never carried
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.uid, info.gid, info.mtime = AGENT_UID, AGENT_GID, now
            info.uname = info.gname = "agent"
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def files_for(workspace: Workspace, engine: str, door: Any = None) -> Any:
    """The way ``engine`` gets an agent's files: binds on the local engine, volumes elsewhere."""
    from crowdtui.engine_config import LOCAL

    return BindFiles(workspace) if engine == LOCAL else VolumeFiles(workspace, engine, door)
