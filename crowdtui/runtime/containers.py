"""Agent containers on the Docker engine: start, stop, restart, remove, re-adopt.

Every container carries the labels of :mod:`crowdtui.runtime.labels`, so any crowdtui
process over the same workspace finds the containers that are already there (re-adoption)
instead of starting duplicates. Containers are disposable: what must outlive them (home,
IPC folder, logs) lives under the workspace's ``.crowd/``.

Blocking SDK calls run in threads (``asyncio.to_thread``); every public coroutine is safe
to await from the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crowdtui.agent_folder import AGENT_GID, AGENT_UID, finding_event, home_folder, ipc_folder
from crowdtui.errors import CrowdError
from crowdtui.roster import AgentDef
from crowdtui.runners import effective, runner_for, runner_settings
from crowdtui.runtime import labels
from crowdtui.runtime.disk import ensure_home_disk
from crowdtui.runtime.engine import engine_errors
from crowdtui.workspace import Workspace
from qms.names import NAME_RE, OPERATOR

log = logging.getLogger(__name__)

HOME = "/home/agent"
IPC = "/run/crowd"
WORKSPACE_MOUNT = "/workspace"
STOP_TIMEOUT = 10  # seconds the agent gets to exit after SIGTERM
LOG_MAX_SIZE = "10m"  # per engine log file (three are kept)
CONFIG_LABEL = "crowdtui.config"  # hash of the container's configuration
ENTRY = "crowd-entry"  # in the agent image: takes secrets, starts the egress forwarder, execs
EGRESS_SOCKET = "egress.sock"  # in the agent's IPC folder, served by crowdtui.hub.egress
PROXY_URL = "http://127.0.0.1:3128"  # the forwarder crowd-entry starts inside the container

#: the states a ContainerInfo reports
STATES = ("created", "running", "exited", "crashed", "stopped")


class UnknownAgent(CrowdError):
    """A name that is neither in the roster nor has a container."""


class NoContainer(CrowdError):
    """The agent has no container (it was never started or has been removed)."""


class ContainerFailed(CrowdError):
    """The engine refused to create or start the container."""


@dataclass(frozen=True)
class ContainerInfo:
    """One agent's container as the engine reports it."""

    name: str  # the agent
    container_id: str
    state: str  # created | running | exited | crashed | stopped
    exit_code: int | None
    oom_killed: bool
    image: str
    started_at: str | None
    finished_at: str | None = None
    container_name: str = ""
    config: str = ""  # hash of the configuration it was created with (see Runtime.config_hash)

    @property
    def id(self) -> str:
        return self.container_id

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    @property
    def running(self) -> bool:
        return self.state == "running"

    def describe(self) -> str:
        """A few words for people: ``running``, ``crashed (exit 3)``, ``crashed (out of memory)``."""
        if self.state == "crashed":
            return "crashed (out of memory)" if self.oom_killed else f"crashed (exit {self.exit_code})"
        return self.state

    def state_detail(self) -> dict[str, Any]:
        """What the registry records beside the state (same for every process, so no duplicates)."""
        detail: dict[str, Any] = {"container": self.short_id}
        if self.state in ("exited", "crashed", "stopped"):
            detail["exit_code"] = self.exit_code
        if self.oom_killed and self.state == "crashed":
            detail["oom_killed"] = True
            detail["reason"] = "killed: out of memory"
        return detail

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- pure helpers


def _slug(text: str, limit: int = 24) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._")
    return slug[:limit].strip("-._") or "ws"


def container_name(workspace: Workspace, agent: str) -> str:
    """``crowd-<workspace name>-<agent>-<workspace id>``: unique per workspace and agent."""
    return f"crowd-{_slug(workspace.name)}-{agent}-{workspace.id[:6]}"


def parse_size(text: str) -> int:
    """``512m`` / ``2g`` / ``1048576b`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmg]?)b?\s*", str(text), re.IGNORECASE)
    if not m:
        raise CrowdError(f"{text!r} is not a size; use e.g. 512m or 2g")
    unit = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    return int(float(m.group(1)) * unit)


def state_of(attrs: dict[str, Any], stop_requested_for: str | None = None) -> tuple[str, int | None, bool]:
    """(state, exit code, OOM-killed) from ``docker inspect`` output.

    ``stop_requested_for`` is the container id the operator asked to stop (if any): its
    exit is "stopped", never a crash.
    """
    st = attrs.get("State", {})
    status = st.get("Status", "")
    oom = bool(st.get("OOMKilled"))
    code = st.get("ExitCode")
    if status in ("running", "paused", "restarting"):
        return "running", None, False
    if status == "created":
        return "created", None, False
    if stop_requested_for and stop_requested_for == attrs.get("Id"):
        return "stopped", code, False
    if oom or (code not in (None, 0)):
        return "crashed", code, oom
    return "exited", code, False


def info_from_attrs(attrs: dict[str, Any], stop_requested_for: str | None = None) -> ContainerInfo:
    state, code, oom = state_of(attrs, stop_requested_for)
    st = attrs.get("State", {})
    cfg = attrs.get("Config", {})
    lbl = cfg.get("Labels") or {}
    started = st.get("StartedAt")
    finished = st.get("FinishedAt")
    zero = "0001-01-01T00:00:00Z"
    return ContainerInfo(
        name=lbl.get(labels.AGENT, ""),
        container_id=attrs.get("Id", ""),
        state=state,
        exit_code=code,
        oom_killed=oom,
        image=cfg.get("Image", ""),
        started_at=None if not started or started == zero else started,
        finished_at=None if not finished or finished == zero or state == "running" else finished,
        container_name=attrs.get("Name", "").lstrip("/"),
        config=lbl.get(CONFIG_LABEL, ""),
    )


def check_name(name: str) -> str:
    """An agent name is safe as a folder, label and container name; anything else is refused."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name == OPERATOR:
        shown = repr(name.encode("unicode_escape").decode()) if isinstance(name, str) else repr(name)
        raise UnknownAgent(f"{shown} is not an agent name (a-z, 0-9, '_' and '-', up to 63); check the name")
    return name


def needs_entry(agent: AgentDef) -> bool:
    """Whether the agent's command runs through crowd-entry (secrets to take, a forwarder to start)."""
    return bool(agent.secrets) or agent.network == "allowlist"


def agent_user() -> str:
    """The uid:gid agents run as: the image's ``agent`` (1000), whose folders crowdtui (as
    root) hands over. Run by another user, crowdtui cannot hand folders over, so agents run
    as that user, who owns them already."""
    if os.geteuid() == 0 or os.geteuid() == AGENT_UID:
        return f"{AGENT_UID}:{AGENT_GID}"
    return f"{os.geteuid()}:{os.getegid()}"


# --------------------------------------------------------------------------- the runtime


class Runtime:
    """The containers of one workspace's agents.

    ``Runtime(workspace)`` connects to the engine (``EngineUnavailable`` when none answers);
    pass ``client`` to share one. ``progress`` receives lines about long steps (building a
    missing agent image). ``store`` (optional) is used to read agents' secrets from the vault.
    """

    def __init__(self, workspace: Workspace, client=None, *,
                 progress: Callable[[str], None] | None = None, store=None):
        if client is None:
            from crowdtui.runtime.engine import connect

            client = connect()
        self.workspace = workspace
        self.client = client
        self.progress = progress or (lambda line: None)
        self.store = store  # qms Store for the vault; opened per use when None

    # ---- paths on the host

    def persona_dir(self, agent: str) -> Path:
        """Where the persona (CLAUDE.md) and skills written for the container live."""
        return self.workspace.crowd_dir / "personas" / agent

    def empty_dir(self) -> Path:
        """An empty folder mounted over /workspace/.crowd, so no agent sees the store or others' homes."""
        return self.workspace.crowd_dir / "empty"

    def _stop_marker(self, agent: str) -> Path:
        return self.workspace.crowd_dir / "run" / "stopped" / agent

    # ---- configuration

    def default_image(self) -> str:
        from crowdtui.runtime.image import image_tag

        return str(self.workspace.setting("runtime", "image", "") or "") or image_tag()

    def image_for(self, agent: AgentDef) -> str:
        """``image:`` when given; else the runner's image (its program on the agent image), else
        the default agent image."""
        if agent.image:
            return agent.image
        runner = runner_for(agent)
        if runner.packages:
            from crowdtui.runtime.runner_image import runner_image_tag

            return runner_image_tag(runner, runner_settings(self.workspace.config, runner.name))
        return self.default_image()

    def effective(self, agent: AgentDef) -> AgentDef:
        """The definition with its runner's secret, egress and network folded in."""
        return effective(agent, self.workspace.config)

    def container_config(self, agent: AgentDef, secrets: dict[str, str] | None = None) -> dict[str, Any]:
        """The keyword arguments for ``client.containers.create`` (pure: touches nothing).

        Secret values never enter the configuration: when the definition names secrets, the
        command runs through ``crowd-entry``, which takes them from a one-shot socket in the
        agent's IPC folder at start (see :mod:`crowdtui.runtime.secrets_handoff`); only their
        names are in the environment (``CROWD_SECRETS``). ``secrets`` is accepted for
        compatibility and ignored. With ``network: allowlist`` the container has no network
        and its proxy settings point at the forwarder crowd-entry starts (127.0.0.1:3128 ->
        ``/run/crowd/egress.sock``, served by :class:`crowdtui.hub.egress.EgressProxy`).
        When the definition gives no command, ``["crowd-entry"]`` is completed with the
        image's own command at start.
        """
        from docker.types import Mount

        ws = self.workspace
        name = check_name(agent.name)
        agent = self.effective(agent)
        runner = runner_for(agent)
        settings = runner_settings(ws.config, runner.name)
        mounts = [
            Mount(HOME, str(ws.home_dir(name)), type="bind", read_only=False),
            Mount(IPC, str(ws.ipc_dir(name)), type="bind", read_only=False),
            Mount(WORKSPACE_MOUNT, str(ws.root), type="bind",
                  read_only=agent.workspace_mode != "rw"),
            Mount(f"{WORKSPACE_MOUNT}/.crowd", str(self.empty_dir()), type="bind", read_only=True),
        ]
        if agent.workspace_mode == "rw":
            # A writable workspace must not let the agent rewrite the roster or the
            # configuration: that would let it widen its own grants, mounts or tier.
            # agents/ is always guarded (prepare_host makes it when missing, so the agent
            # cannot create a roster of its own there); crowd.toml when the workspace has one.
            for guarded in ("agents", "crowd.toml"):
                if guarded == "agents" or (ws.root / guarded).exists():
                    mounts.append(Mount(f"{WORKSPACE_MOUNT}/{guarded}", str(ws.root / guarded),
                                        type="bind", read_only=True))
        mounts += [
            Mount(runner.persona_target, str(self.persona_dir(name) / runner.persona_file), type="bind",
                  read_only=True),
        ]
        if agent.skills:
            mounts.append(Mount(f"{HOME}/.claude/skills", str(self.persona_dir(name) / "skills"),
                                type="bind", read_only=True))
        for m in agent.mounts:
            source = Path(m.source).expanduser()
            if not source.is_absolute():
                source = ws.root / source
            mounts.append(Mount(m.target, str(source), type="bind", read_only=m.mode != "rw"))

        env = {
            **runner.environment(agent, settings),
            **agent.env,
            "CROWD_AGENT": name,
            "CROWD_WORKSPACE": WORKSPACE_MOUNT,
            "CROWD_IPC": IPC,
            "HOME": HOME,
            "TERM": "xterm-256color",
        }
        if agent.secrets:
            env["CROWD_SECRETS"] = ",".join(agent.secrets)
        if agent.network == "allowlist":
            env.update({key: PROXY_URL for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")})
            env.update({"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1",
                        "CROWD_EGRESS": f"{IPC}/{EGRESS_SOCKET}"})
        command = list(agent.command) if agent.command else runner.command(agent, settings)
        if needs_entry(agent):
            command = [ENTRY, *(command or [])]
        res = agent.resources
        network = "bridge" if agent.network == "open" else "none"
        config: dict[str, Any] = {
            "image": self.image_for(agent),
            "command": command,
            "name": container_name(ws, name),
            "hostname": name,
            "labels": labels.for_agent(ws, name),
            "environment": env,
            "user": agent_user(),
            "tty": True,
            "stdin_open": True,
            "init": True,
            "security_opt": ["no-new-privileges:true"],
            "cap_drop": ["ALL"],
            "cap_add": list(agent.capabilities) or None,
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=256m", "/run": "rw,nosuid,nodev,size=16m,mode=1777"},
            "pids_limit": int(res.pids),
            "mem_limit": parse_size(res.memory),
            "memswap_limit": parse_size(res.memory),  # no swap beyond the memory limit
            "nano_cpus": int(float(res.cpus) * 1e9),
            "network_mode": network,
            "mounts": mounts,
            # bounded engine-side logs; older output is archived under .crowd/logs/ on removal
            "log_config": {"type": "json-file", "config": {"max-size": LOG_MAX_SIZE, "max-file": "3"}},
            "detach": True,
        }
        if runner.working_dir:
            config["working_dir"] = runner.working_dir
        # the persona and skills are files, not settings: they count as configuration too
        hashed = {**config, "persona": agent.persona, "skills": agent.skills}
        digest = hashlib.sha256(json.dumps(hashed, sort_keys=True, default=str).encode()).hexdigest()
        config["labels"] = {**config["labels"], CONFIG_LABEL: digest[:16]}
        return config

    def config_hash(self, agent: AgentDef) -> str:
        """The hash a container created from ``agent`` now would carry (secrets not included)."""
        return self.container_config(agent)["labels"][CONFIG_LABEL]

    def is_current(self, agent: AgentDef, info: ContainerInfo) -> bool:
        """False when the definition (or the default image) changed since the container was made:
        ``restart`` applies it."""
        return info.config == self.config_hash(agent)

    def prepare_host(self, agent: AgentDef, findings: list | None = None) -> None:
        """Create the folders and files the container mounts, writable by the agent user.

        The agent's home and IPC folder are the agent's: everything in them is made through
        :class:`crowdtui.agent_folder.AgentFolder`, which never follows what the agent placed
        (a link where ``.claude`` should be is replaced, not chowned through). What stood in
        the way is appended to ``findings``.
        """
        ws = self.workspace
        name = check_name(agent.name)
        agent = self.effective(agent)
        runner = runner_for(agent)
        persona_rel = _home_relative(runner.persona_target)
        persona = self.persona_dir(name)
        disk = ensure_home_disk(ws, name, agent.resources.disk)
        if disk.startswith("unlimited") and agent.resources.disk != "none":
            log.warning("agent %s: home %s", name, disk)
        home, ipc = home_folder(ws, name), ipc_folder(ws, name)
        try:
            ipc.ensure_dir("")
            home.ensure_dir("")
            home.ensure_dir(".claude")
            # The bind-mount targets inside the home: created here, owned by the agent, so the
            # engine never makes root-owned placeholders in a folder the agent must own.
            if "/" in persona_rel:
                home.ensure_dir(persona_rel.rsplit("/", 1)[0])
            home.ensure_file(persona_rel)
            if agent.skills:
                home.ensure_dir(".claude/skills")
            runner.seed_home(home, agent, runner_settings(ws.config, runner.name))
        finally:
            if findings is not None:
                findings.extend(home.findings + ipc.findings)
        if agent.workspace_mode == "rw":  # the workspace is the agent's too: guard the roster
            roster = ws.agents_dir
            if os.path.islink(roster) or (os.path.lexists(roster) and not roster.is_dir()):
                raise ContainerFailed(f"agent {name}: {roster} is not a plain folder (a link or a file "
                                      "an agent with a writable workspace may have left); replace it "
                                      "with the roster folder before starting agents")
            roster.mkdir(exist_ok=True)
        for folder in (persona, self.empty_dir()):  # ours: never mounted writable
            folder.mkdir(parents=True, exist_ok=True)
        _write_in_place(persona / runner.persona_file, agent.persona)
        skills = persona / "skills"
        if agent.skills:
            skills.mkdir(exist_ok=True)
            for skill, text in agent.skills.items():
                (skills / skill).mkdir(exist_ok=True)
                _write_in_place(skills / skill / "SKILL.md", text)
        for m in agent.mounts:
            source = Path(m.source).expanduser()
            if not source.is_absolute():
                source = ws.root / source
            if not source.exists():
                raise ContainerFailed(
                    f"agent {name}: mount source {source} does not exist; create it or fix "
                    f"'mounts' in agents/{agent.rel_path}/AGENT.md"
                )
        for path in (persona, self.empty_dir()):
            os.chmod(path, 0o755)

    # ---- engine lookups (blocking; called in threads)

    def _filters(self, agent: str | None = None) -> dict[str, Any]:
        wanted = [f"{labels.WORKSPACE}={self.workspace.id}", f"{labels.KIND}=agent"]
        if agent is not None:
            wanted.append(f"{labels.AGENT}={agent}")
        return {"label": wanted}

    def stopped_container_id(self, agent: str) -> str | None:
        """The id of the agent's container the operator last asked to stop, if any."""
        return self._stopped_id(agent)

    def _stopped_id(self, agent: str) -> str | None:
        try:
            return self._stop_marker(agent).read_text().strip() or None
        except OSError:
            return None

    def _find(self, agent: str):
        """The agent's container (running first, then newest), or None."""
        check_name(agent)
        found = self.client.containers.list(all=True, filters=self._filters(agent))
        if not found:
            return None
        found.sort(key=lambda c: (c.status == "running", c.attrs.get("Created", "")), reverse=True)
        return found[0]

    def _info(self, container) -> ContainerInfo:
        attrs = container.attrs
        agent = (attrs.get("Config", {}).get("Labels") or {}).get(labels.AGENT, "")
        return info_from_attrs(attrs, self._stopped_id(agent))

    def _running(self, name: str) -> ContainerInfo | None:
        existing = self._find(name)
        if existing is not None and existing.status in ("running", "paused", "restarting"):
            return self._info(existing)
        return None

    def _start_sync(self, agent: AgentDef, secrets: dict[str, str] | None = None,
                    findings: list | None = None) -> ContainerInfo:
        from docker.errors import APIError, ImageNotFound

        existing = self._find(agent.name)
        if existing is not None and existing.status in ("running", "paused", "restarting"):
            return self._info(existing)  # already up (maybe started by another process)
        if existing is not None:
            self._discard(agent.name, existing)
        config = self.container_config(agent)
        self._ensure_image(config["image"], agent)  # before anything is made for the agent
        self.prepare_host(agent, findings)
        if config["command"] == [ENTRY]:  # no command of its own: the image's, through crowd-entry
            image_cfg = self.client.images.get(config["image"]).attrs.get("Config") or {}
            config["command"] = [ENTRY, *(image_cfg.get("Cmd") or [])]
        try:
            container = self.client.containers.create(**config)
        except ImageNotFound as exc:
            raise ContainerFailed(
                f"agent {agent.name}: image {config['image']} is not in the engine; build or load it "
                "(`crowdtui image build` for the default image)"
            ) from exc
        except APIError as exc:
            if exc.status_code == 409:  # another process created it a moment ago
                again = self._find(agent.name)
                if again is not None:
                    if again.status != "running":
                        again.start()
                        again.reload()
                    return self._info(again)
            raise ContainerFailed(f"agent {agent.name}: the engine refused the container: "
                                  f"{exc.explanation or exc}") from exc
        self._stop_marker(agent.name).unlink(missing_ok=True)
        handoff = None
        if agent.secrets:
            from crowdtui.runtime.secrets_handoff import SecretHandoff

            handoff = SecretHandoff(self.workspace.ipc_dir(agent.name), dict(secrets or {}), agent=agent.name)
            try:
                handoff.open()
            finally:
                if findings is not None:
                    findings.extend(handoff.findings)
        try:
            try:
                container.start()
            except APIError as exc:
                container.remove(force=True)
                raise ContainerFailed(f"agent {agent.name}: the container did not start: "
                                      f"{exc.explanation or exc}") from exc
            if handoff is not None:
                try:
                    handoff.serve(container.id, lambda: _stopped_why(container))
                except CrowdError:
                    self._discard(agent.name, container)
                    raise
        finally:
            if handoff is not None:
                handoff.close()
        container.reload()
        return self._info(container)

    def _ensure_image(self, image: str, agent: AgentDef | None = None) -> None:
        from docker.errors import ImageNotFound

        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            pass
        from crowdtui.runtime.image import REPOSITORY, ensure_image

        if image.startswith(f"{REPOSITORY}:"):
            ensure_image(self.client, progress=self.progress)  # builds the current inputs' image
            try:
                self.client.images.get(image)  # that one, or :latest
                return
            except ImageNotFound:
                pass
        runner = runner_for(agent) if agent is not None and not agent.image else None
        if runner is not None and runner.packages:
            raise ContainerFailed(
                f"agent {agent.name}: the {runner.name} image {image} is not built; run "
                f"`crowdtui image build --runner {runner.name}`"
            )
        raise ContainerFailed(
            f"image {image} is not in the engine and cannot be pulled here; build or load it "
            "(`crowdtui image build` makes the default agent image)"
        )

    def _stop_sync(self, name: str, timeout: int) -> ContainerInfo:
        container = self._find(name)
        if container is None:
            raise NoContainer(f"agent {name} has no container; nothing to stop")
        marker = self._stop_marker(name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(container.id)
        if container.status in ("running", "paused", "restarting"):
            container.stop(timeout=timeout)
        container.reload()
        return self._info(container)

    def _remove_sync(self, name: str) -> bool:
        check_name(name)
        removed = False
        for container in self.client.containers.list(all=True, filters=self._filters(name)):
            marker = self._stop_marker(name)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(container.id)
            self._discard(name, container)
            removed = True
        # The marker stays (keyed by container id) so a late "die" is still read as a stop.
        return removed

    def _discard(self, name: str, container) -> None:
        """Remove a container, keeping its output under .crowd/logs/<agent>/ first."""
        from crowdtui.runtime.log_lines import archive_logs

        try:
            archive_logs(self.workspace.log_dir(name), container)
        except Exception:  # the output is a courtesy; removing must not fail over it
            pass
        container.remove(force=True)

    def list_sync(self) -> list[ContainerInfo]:
        best: dict[str, ContainerInfo] = {}
        for container in self.client.containers.list(all=True, filters=self._filters()):
            info = self._info(container)
            if not info.name:
                continue
            have = best.get(info.name)
            if have is None or (info.running and not have.running):
                best[info.name] = info
        return [best[n] for n in sorted(best)]

    # ---- the async API

    async def start(self, agent: AgentDef, *, secrets: dict[str, str] | None = None) -> ContainerInfo:
        """Start the agent's container; an agent already running is returned as it is.

        The secrets the definition names are read from the workspace's vault (unless
        ``secrets`` gives them) and handed to the agent's process at start through a one-shot
        socket (never the container's configuration); start returns once they were taken
        (``HandoffFailed`` when they were not within 20 s; the container is then removed).
        """
        running = await _in_thread(self._running, agent.name)
        if running is not None:
            return running
        agent = self.effective(agent)
        if secrets is None and agent.secrets:
            secrets = await self.reveal_secrets(agent)
        findings: list = []
        try:
            return await _in_thread(self._start_sync, agent, secrets, findings)
        finally:
            if findings:
                await self._record_findings(findings)

    async def _record_findings(self, findings: list) -> None:
        """One ``agent.unsafe_file`` event per thing an agent left in crowdtui's way."""
        from qms import Store

        store = self.store if self.store is not None else await Store.open(self.workspace.db_path)
        try:
            for finding in findings:
                kind, subject, detail = finding_event(finding)
                await store.append_event("runtime", kind, subject, detail)
        finally:
            if store is not self.store:
                await store.close()

    async def reveal_secrets(self, agent: AgentDef) -> dict[str, str]:
        """The values of the secrets ``agent`` names, from the vault (SecretError if one is missing)."""
        if not agent.secrets:
            return {}
        from qms import Store

        from crowdtui.secrets import Vault

        store = self.store if self.store is not None else await Store.open(self.workspace.db_path)
        try:
            return await Vault.open(self.workspace, store, create_key=False).reveal(agent.secrets)
        finally:
            if store is not self.store:
                await store.close()

    async def stop(self, name: str, *, timeout: int = STOP_TIMEOUT) -> ContainerInfo:
        """Stop the agent's container (kept, state "stopped": the operator's intent, not a crash)."""
        return await _in_thread(self._stop_sync, name, timeout)

    async def restart(self, agent: AgentDef, *, secrets: dict[str, str] | None = None) -> ContainerInfo:
        """Stop and remove the container, then start a fresh one from the current definition."""
        agent = self.effective(agent)
        if secrets is None and agent.secrets:
            secrets = await self.reveal_secrets(agent)  # before removing: a missing one changes nothing
        await _in_thread(self._remove_sync, agent.name)
        return await self.start(agent, secrets=secrets or {})

    async def remove(self, name: str) -> bool:
        """Remove the agent's container(s), running or not. False when there was none."""
        return await _in_thread(self._remove_sync, name)

    async def adopt(self) -> list[ContainerInfo]:
        """The containers this workspace already has (e.g. from an earlier crowdtui process)."""
        return await _in_thread(self.list_sync)

    async def list(self) -> list[ContainerInfo]:
        """Every agent container of this workspace, one per agent, by name."""
        return await _in_thread(self.list_sync)

    async def info(self, name: str) -> ContainerInfo | None:
        def run() -> ContainerInfo | None:
            container = self._find(name)
            return None if container is None else self._info(container)

        return await _in_thread(run)

    async def container(self, name: str):
        """The agent's docker ``Container`` (running preferred), or None."""
        return await _in_thread(self._find, name)

    def container_sync(self, name: str):
        """Same as :meth:`container`, for code already in a thread."""
        return self._find(name)

    def close(self) -> None:
        self.client.close()


def _stopped_why(container) -> str | None:
    """None while the container runs; else its exit and last output line (for one-line errors)."""
    container.reload()
    if container.status in ("running", "created", "restarting"):
        return None
    code = (container.attrs.get("State") or {}).get("ExitCode")
    try:
        tail = container.logs(tail=5).decode("utf-8", "replace").strip().splitlines()
    except Exception:
        tail = []
    last = tail[-1].strip()[:200] if tail else "no output"
    return f"exit {code}: {last}"


async def _in_thread(fn, *args):
    """Run a blocking SDK call off the event loop; engine trouble becomes a one-line error."""
    with engine_errors(ContainerFailed):
        return await asyncio.to_thread(fn, *args)


def _home_relative(target: str) -> str:
    """``/home/agent/.claude/CLAUDE.md`` -> ``.claude/CLAUDE.md`` (a runner's persona path)."""
    rel = target.removeprefix(HOME + "/")
    if rel == target or not rel or ".." in rel.split("/"):
        raise ContainerFailed(f"the persona path {target!r} is not inside {HOME}")
    return rel


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a file keeping its inode, so a running container's file mount sees the change."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o644)
