"""Agent containers on the Docker engine: start, stop, restart, remove, re-adopt.

Every container carries the labels of :mod:`crowdtui.runtime.labels`, so any crowdtui
process over the same workspace finds the containers that are already there (re-adoption)
instead of starting duplicates. Containers are disposable: what must outlive them (home,
IPC folder, logs) lives under the workspace's ``.crowd/``.

What a container is made of (its configuration, the host folders it mounts) is
:mod:`crowdtui.runtime.container_spec`; what the engine reports about one is
:mod:`crowdtui.runtime.container_info`. Blocking SDK calls run in threads
(:func:`crowdtui.runtime.threads.in_thread`); every public coroutine is safe to await from
the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from crowdtui.agent_folder import finding_event
from crowdtui.errors import CrowdError
from crowdtui.roster import AgentDef
from crowdtui.runners import effective
from crowdtui.runtime import container_spec, labels
from crowdtui.runtime.container_info import (  # noqa: F401 (the runtime's names, imported from here by callers)
    STATES,
    ContainerFailed,
    ContainerInfo,
    NoContainer,
    UnknownAgent,
    check_name,
    container_name,
    info_from_attrs,
    parse_size,
    state_of,
)
from crowdtui.engine_config import LOCAL
from crowdtui.runtime.container_spec import ENTRY
from crowdtui.runtime.threads import in_thread
from crowdtui.workspace import Workspace

STOP_TIMEOUT = 10  # seconds the agent gets to exit after SIGTERM


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
        from crowdtui.runtime.engines import Engines

        self.workspace = workspace
        self.client = client  # the local engine's
        #: every engine of the workspace (crowd.toml [engines.NAME]); ``local`` is ``client``
        self.engines = Engines(workspace, client)
        #: the relay's seam (``relay_container.RelayHookup``, set by the host): agents on a remote
        #: engine get their hub door through its relay; None: they run without one
        self.door: Any = None
        self.unreachable: set[str] = set()  # engines that did not answer the last list
        self._seen: dict[str, str] = {}  # container id -> engine it was seen on
        self.homed: set[str] = set()  # swarm task containers whose home got the agent's files
        self.progress = progress or (lambda line: None)
        self.store = store  # qms Store for the vault; opened per use when None

    # ---- paths on the host

    def persona_dir(self, agent: str) -> Path:
        """Where the persona (CLAUDE.md) and skills written for the container live."""
        return container_spec.persona_dir(self.workspace, agent)

    def empty_dir(self) -> Path:
        """An empty folder mounted over /workspace/.crowd, so no agent sees the store or others' homes."""
        return container_spec.empty_dir(self.workspace)

    def _stop_marker(self, agent: str) -> Path:
        return self.workspace.crowd_dir / "run" / "stopped" / agent

    # ---- configuration (crowdtui.runtime.container_spec)

    def default_image(self) -> str:
        return container_spec.default_image(self.workspace)

    def image_for(self, agent: AgentDef) -> str:
        """``image:`` when given; else the runner's image (its program on the agent image), else
        the default agent image."""
        return container_spec.image_for(self.workspace, agent)

    def effective(self, agent: AgentDef) -> AgentDef:
        """The definition with its runner's secret, egress and network folded in."""
        return effective(agent, self.workspace.config)

    def container_config(self, agent: AgentDef, secrets: dict[str, str] | None = None) -> dict[str, Any]:
        """The keyword arguments for ``client.containers.create`` (pure: touches nothing).
        ``secrets`` is accepted for compatibility and ignored: secret values never enter the
        configuration (see :func:`crowdtui.runtime.container_spec.container_config`)."""
        return container_spec.container_config(self.workspace, agent)

    def config_hash(self, agent: AgentDef) -> str:
        """The hash a container created from ``agent`` now would carry (secrets not included)."""
        return container_spec.config_hash(self.workspace, agent)

    def is_current(self, agent: AgentDef, info: ContainerInfo) -> bool:
        """False when the definition (or the default image) changed since the container was made:
        ``restart`` applies it."""
        files = None if info.engine == LOCAL else self.files(info.engine)
        return info.config == container_spec.config_hash(self.workspace, agent, files)

    # ---- engines (crowdtui.runtime.engines)

    def files(self, engine: str):
        """How ``engine`` gets an agent's files and hub door (crowdtui.runtime.agent_files)."""
        from crowdtui.runtime.agent_files import files_for

        spec = self.engines.specs.get(engine)
        if spec is not None and spec.mode == "swarm":  # through the relay of the task's node
            from crowdtui.runtime.swarm import SwarmFiles

            return SwarmFiles(self, engine, self.door)
        return files_for(self.workspace, engine, self.door)

    def engine_of(self, agent: str) -> str:
        """The engine the agent's container was last made on (``local`` when never elsewhere)."""
        from crowdtui.runtime.engines import recorded_engine

        return recorded_engine(self.workspace, agent)

    def _client_of(self, agent: str):
        return self.engines.client(self.engine_of(agent))

    def client_for_container(self, container_id: str):
        """The client of the engine a container (by id) was seen on; the local one by default."""
        engine = self._seen.get(container_id, LOCAL)
        return self.engines.client(engine)

    def prepare_host(self, agent: AgentDef, findings: list | None = None) -> None:
        """Create the folders and files the container mounts, writable by the agent user
        (see :func:`crowdtui.runtime.container_spec.prepare_host`)."""
        container_spec.prepare_host(self.workspace, agent, findings)

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
        """The agent's container (running first, then newest) on the engine it was placed on, or None."""
        check_name(agent)
        engine = self.engine_of(agent)
        if self.engines.spec(engine).mode == "swarm":  # through the engine of the task's node
            from crowdtui.runtime import swarm

            container, node = swarm.find_task_container(self, engine, agent, self._filters(agent))
            if container is not None:
                self._seen[container.id] = node
                swarm.first_sight(self, agent, container)
            return container
        found = self._client_of(agent).containers.list(all=True, filters=self._filters(agent))
        if not found:
            return None
        found.sort(key=lambda c: (c.status == "running", c.attrs.get("Created", "")), reverse=True)
        return found[0]

    def _info(self, container) -> ContainerInfo:
        attrs = container.attrs
        agent = (attrs.get("Config", {}).get("Labels") or {}).get(labels.AGENT, "")
        info = info_from_attrs(attrs, self._stopped_id(agent))
        self._seen.setdefault(info.container_id, info.engine)
        seen = self._seen[info.container_id]
        return replace(info, node=seen) if seen != info.engine else info

    def _running(self, name: str) -> ContainerInfo | None:
        existing = self._find(name)
        if existing is not None and existing.status in ("running", "paused", "restarting"):
            return self._info(existing)
        return None

    def _start_sync(self, agent: AgentDef, secrets: dict[str, str] | None = None,
                    findings: list | None = None) -> ContainerInfo:
        from docker.errors import APIError, ImageNotFound

        from crowdtui.runtime.engines import record_engine

        existing = self._find(agent.name)
        if existing is not None and existing.status in ("running", "paused", "restarting"):
            return self._info(existing)  # already up (maybe started by another process)
        if existing is not None:
            self._discard(agent.name, existing)
        engine = self.engines.place(agent)
        if self.engines.spec(engine).mode == "swarm":
            return self._start_service(agent, engine)
        client = self.engines.client(engine)
        files = self.files(engine)
        files.check(agent)
        config = container_spec.container_config(self.workspace, agent, None if engine == LOCAL else files)
        config["labels"][labels.ENGINE] = engine  # (after the hash: the same definition, any engine)
        self._ensure_image(config["image"], agent, engine)  # before anything is made for the agent
        if engine != LOCAL and self.door is not None:  # the relay runs from the agent image
            self._ensure_image(self.door.image or self.default_image(), None, engine)
        files.prepare(agent, client, findings)
        if config["command"] == [ENTRY]:  # no command of its own: the image's, through crowd-entry
            image_cfg = client.images.get(config["image"]).attrs.get("Config") or {}
            config["command"] = [ENTRY, *(image_cfg.get("Cmd") or [])]
        record_engine(self.workspace, agent.name, engine)  # before create: a crash after it still finds it
        try:
            container = client.containers.create(**config)
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
        try:
            files.after_create(agent, container)
        except Exception:
            container.remove(force=True)
            raise
        handoff = files.handoff(agent, dict(secrets or {})) if agent.secrets else None  # host socket, or relay
        if handoff is not None:
            try:
                handoff.open()
            except Exception:
                container.remove(force=True)
                raise
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

    def _start_service(self, agent: AgentDef, engine: str) -> ContainerInfo:
        """``agent`` as a one-replica service of the swarm ``engine`` (crowdtui.runtime.swarm)."""
        from crowdtui.runtime import swarm

        return self._info(swarm.start_agent(self, agent, engine))

    def _ensure_image(self, image: str, agent: AgentDef | None = None, engine: str = LOCAL) -> None:
        """Make ``image`` present on ``engine`` (crowdtui.runtime.image_presence)."""
        from crowdtui.runtime.image_presence import ensure_present

        ensure_present(self.client, self.engines, image, agent, engine, self.progress)

    def _stop_sync(self, name: str, timeout: int) -> ContainerInfo:
        container = self._find(name)
        if container is None:
            raise NoContainer(f"agent {name} has no container; nothing to stop")
        marker = self._stop_marker(name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(container.id)
        engine = self.engine_of(name)
        if self.engines.spec(engine).mode == "swarm":  # the service to no replica: it stays stopped
            from crowdtui.runtime import swarm

            return self._info(swarm.stop_service(self, engine, container_name(self.workspace, name), container,
                                                 timeout))
        if container.status in ("running", "paused", "restarting"):
            container.stop(timeout=timeout)
        container.reload()
        return self._info(container)

    def _remove_sync(self, name: str) -> bool:
        check_name(name)
        removed = False
        engine = self.engine_of(name)
        if self.engines.spec(engine).mode == "swarm":
            from crowdtui.runtime import swarm

            return swarm.remove_agent(self, engine, name)
        for container in self._client_of(name).containers.list(all=True, filters=self._filters(name)):
            marker = self._stop_marker(name)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(container.id)
            self._discard(name, container)
            removed = True
        if engine != LOCAL and self.door is not None:  # its socket folder in the engine's relay
            from crowdtui.runtime.relay_container import remove_agent_ipc_volume

            remove_agent_ipc_volume(self._client_of(name), self.workspace, name)
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

    def list_engine(self, engine: str) -> list[ContainerInfo]:
        """This workspace's agent containers on one engine (raises when it does not answer)."""
        client = self.engines.client(engine)
        infos = [self._info(c) for c in client.containers.list(all=True, filters=self._filters())]
        return [replace(i, node=engine) if i.engine != engine else i for i in infos]

    def list_sync(self) -> list[ContainerInfo]:
        """One container per agent over every engine: the one on the engine it was placed on
        (running preferred). A remote engine that does not answer is left out (and named in
        ``unreachable``); the local one not answering is an error, as ever."""
        best: dict[str, ContainerInfo] = {}
        unreachable = set()
        for engine in self.engines.names():
            try:
                infos = self.list_engine(engine)
            except Exception:
                if engine == LOCAL:
                    raise
                unreachable.add(engine)
                continue
            for info in infos:
                if not info.name:
                    continue
                have, placed = best.get(info.name), self.engine_of(info.name)
                rank = (info.engine == placed, info.running)  # where it was placed, running, first
                if have is None or rank > (have.engine == placed, have.running):
                    best[info.name] = info
        self.unreachable = unreachable
        return [best[n] for n in sorted(best)]

    # ---- the async API

    async def start(self, agent: AgentDef, *, secrets: dict[str, str] | None = None) -> ContainerInfo:
        """Start the agent's container; an agent already running is returned as it is.

        The secrets the definition names are read from the workspace's vault (unless
        ``secrets`` gives them) and handed to the agent's process at start through a one-shot
        socket (never the container's configuration); start returns once they were taken
        (``HandoffFailed`` when they were not within 20 s; the container is then removed).
        """
        running = await in_thread(self._running, agent.name)
        if running is not None:
            return running
        agent = self.effective(agent)
        if secrets is None and agent.secrets:
            secrets = await self.reveal_secrets(agent)
        findings: list = []
        try:
            return await in_thread(self._start_sync, agent, secrets, findings)
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
        return await in_thread(self._stop_sync, name, timeout)

    async def restart(self, agent: AgentDef, *, secrets: dict[str, str] | None = None) -> ContainerInfo:
        """Stop and remove the container, then start a fresh one from the current definition."""
        agent = self.effective(agent)
        if secrets is None and agent.secrets:
            secrets = await self.reveal_secrets(agent)  # before removing: a missing one changes nothing
        await in_thread(self._remove_sync, agent.name)
        return await self.start(agent, secrets=secrets or {})

    async def remove(self, name: str) -> bool:
        """Remove the agent's container(s), running or not. False when there was none."""
        return await in_thread(self._remove_sync, name)

    async def adopt(self) -> list[ContainerInfo]:
        """The containers this workspace already has (e.g. from an earlier crowdtui process)."""
        return await in_thread(self.list_sync)

    async def list(self) -> list[ContainerInfo]:
        """Every agent container of this workspace, one per agent, by name."""
        return await in_thread(self.list_sync)

    async def info(self, name: str) -> ContainerInfo | None:
        def run() -> ContainerInfo | None:
            container = self._find(name)
            return None if container is None else self._info(container)

        return await in_thread(run)

    async def container(self, name: str):
        """The agent's docker ``Container`` (running preferred), or None."""
        return await in_thread(self._find, name)

    def container_sync(self, name: str):
        """Same as :meth:`container`, for code already in a thread."""
        return self._find(name)

    def close(self) -> None:
        self.engines.close()


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


