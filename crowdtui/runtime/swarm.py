"""Agents on a Docker Swarm: an engine entry with ``mode = "swarm"`` (its URL is a manager's).

Each agent is a service with one replica (its restart policy from the definition, placement
constraints from its ``engine_labels`` as node labels), its container labelled like any other
agent's. A task's container can be reached only through the engine of the node it runs on:
the nodes are engines of crowd.toml too (their ``info()["Swarm"]["NodeID"]`` names them), and
the runtime finds the agent's container on them. The image is copied to every node's engine
first (a node without it rejects the task). The home is a volume on the node, with persona
and skills copied in once the task runs; when the service moves to another node, it starts
there with a fresh home (the copy is made again).

The hub door: each node engine runs its own relay (as any remote engine does, with its own
credential and ``relay_address``). Before the service is made, every node's relay is started and
the agent's IPC volume made on every node (the same name everywhere, bound to the agent's folder
in *that node's* relay volume), so whichever node runs the task, now or after a move, mounts
the socket folder of its own relay at ``/run/crowd``. When the runtime first sees the task on a
node it records that node (``engines.record_node``); the hub trusts a node's relay only for the
agents whose task was last seen there (``host_relay.placed_on``), so after a move the old node's
relay no longer speaks for the agent. Secrets and ``network: allowlist`` stay refused on a swarm.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from crowdtui.roster import AgentDef
from crowdtui.runtime.agent_files import VolumeFiles
from crowdtui.runtime.container_info import ContainerFailed, check_name

log = logging.getLogger(__name__)

TASK_WAIT = 60  # seconds a new service's task gets to run


def node_engines(runtime, engine: str) -> dict[str, str]:
    """NodeID -> the engine (of crowd.toml) that is that node of the swarm ``engine``."""
    manager = runtime.engines.client(engine)
    node_ids = {n.id for n in manager.nodes.list()}
    found: dict[str, str] = {}
    for name in runtime.engines.names():
        if name == engine or runtime.engines.spec(name).mode == "swarm":
            continue
        try:
            node = (runtime.engines.client(name).info().get("Swarm") or {}).get("NodeID")
        except Exception:
            continue
        if node in node_ids:
            found[node] = name
    return found


class SwarmFiles(VolumeFiles):
    """A swarm's way with files: volumes as on any remote engine (made by the swarm on the node
    that runs the task), and the hub door through the relay of that node (``door``, the host's
    ``RelayHookup``; None: no door)."""

    def __init__(self, runtime, engine: str, door: Any = None):
        super().__init__(runtime.workspace, engine, door)
        self.runtime = runtime

    def check(self, agent: AgentDef) -> None:
        refused = (["secrets"] if agent.secrets else []) + (["network: allowlist"]
                                                            if agent.network == "allowlist" else [])
        if refused:
            raise ContainerFailed(
                f"agent {agent.name}: on swarm engine {self.engine} it cannot have {' or '.join(refused)} "
                "(the relays of a swarm's nodes carry only its hub door); place it on another engine or "
                "remove them")
        super().check(agent)

    def prepare(self, agent: AgentDef, client, findings: list | None) -> None:
        """Nothing before the service but each node's relay and IPC volume (``prepare_nodes``)."""

    def prepare_nodes(self, agent: AgentDef, nodes: dict[str, str]) -> None:
        """On every node engine: its relay running (its image there) and the agent's IPC volume
        bound to the agent's folder in that relay's volume."""
        if self.door is None:
            return
        image = self.door.image or self.runtime.default_image()
        for node_engine in sorted(set(nodes.values())):
            self.runtime._ensure_image(image, None, node_engine)
            self.door.prepare(self.runtime.engines.client(node_engine), self.workspace, node_engine,
                              check_name(agent.name))

    def relay_engine(self, container) -> str:
        return self.runtime._seen.get(container.id, self.engine)

    def hub_door(self, agent: str) -> str | None:
        from crowdtui.runtime.engines import recorded_node

        node = recorded_node(self.workspace, agent) if self.door is not None else None
        return f"relay:{node}" if node else None


def service_kwargs(config: dict[str, Any], agent: AgentDef) -> dict[str, Any]:
    """``containers.create`` keywords -> ``services.create`` keywords (one replica)."""
    from docker.types import Resources, RestartPolicy, ServiceMode

    restart = {"always": "any", "on-failure": "on-failure"}.get(agent.restart or "no", "none")
    return {
        "image": config["image"], "command": config["command"], "name": config["name"],
        "labels": config["labels"], "container_labels": config["labels"],
        "env": [f"{k}={v}" for k, v in config["environment"].items()],
        "hostname": config["hostname"], "user": config["user"], "tty": True, "open_stdin": True,
        "init": True, "read_only": True, "cap_drop": config["cap_drop"], "cap_add": config["cap_add"],
        "mounts": config["mounts"], "workdir": config.get("working_dir"),
        "resources": Resources(cpu_limit=config["nano_cpus"], mem_limit=config["mem_limit"]),
        "restart_policy": RestartPolicy(condition=restart, delay=1_000_000_000),
        "constraints": [f"node.labels.{label}" if "=" in label else f"node.labels.{label}==true"
                        for label in agent.engine_labels],
        "mode": ServiceMode("replicated", replicas=1),
    }


def start_agent(runtime, agent: AgentDef, engine: str):
    """Start ``agent`` on the swarm ``engine``: its service, then its files copied into the
    task's home. Returns the task's container (reached through its node's engine)."""
    from crowdtui.engine_config import LOCAL
    from crowdtui.runtime import container_spec, labels
    from crowdtui.runtime.container_spec import ENTRY
    from crowdtui.runtime.engines import record_engine, record_node

    files = runtime.files(engine)
    files.check(agent)
    config = container_spec.container_config(runtime.workspace, agent, files)
    config["labels"][labels.ENGINE] = engine
    if config["command"] == [ENTRY]:
        runtime._ensure_image(config["image"], agent, LOCAL)
        image_cfg = runtime.client.images.get(config["image"]).attrs.get("Config") or {}
        config["command"] = [ENTRY, *(image_cfg.get("Cmd") or [])]
    record_engine(runtime.workspace, agent.name, engine)
    runtime._stop_marker(agent.name).unlink(missing_ok=True)
    start_service(runtime, agent, engine, config, files)
    container, node = wait_task(runtime, engine, agent.name, runtime._filters(agent.name))
    runtime._seen[container.id] = node
    record_node(runtime.workspace, agent.name, engine, node)  # its node's relay speaks for it now
    runtime.homed.add(container.id)
    files.after_create(agent, container)  # its doors held by that relay, its files copied in
    return container


def start_service(runtime, agent: AgentDef, engine: str, config: dict[str, Any], files) -> None:
    """Create (or scale back up) the agent's service and wait until its task runs."""
    from docker.errors import NotFound

    from crowdtui.runtime.engines import copy_image

    manager = runtime.engines.client(engine)
    nodes = node_engines(runtime, engine)
    if not nodes:
        raise ContainerFailed(f"agent {agent.name}: no engine of crowd.toml is a node of swarm {engine}; "
                              "add each node's engine ([engines.NAME]) so its containers can be reached")
    for node_engine in nodes.values():
        runtime._ensure_image(config["image"], agent, "local")
        copy_image(runtime.client, runtime.engines.client(node_engine), config["image"], runtime.progress)
    files.prepare_nodes(agent, nodes)  # before the service: any node may run its task
    try:
        service = manager.services.get(config["name"])
        if service.attrs["Spec"]["Labels"].get("crowdtui.config") != config["labels"].get("crowdtui.config"):
            service.remove()
            raise NotFound("changed")
        service.scale(1)
    except NotFound:
        manager.services.create(**service_kwargs(config, agent))


def find_task_container(runtime, engine: str, agent: str, filters: dict) -> Any:
    """The agent's running task container, through its node's engine (or the newest one)."""
    best = None
    for name in node_engines(runtime, engine).values():
        try:
            found = runtime.engines.client(name).containers.list(all=True, filters=filters)
        except Exception:
            continue
        for c in found:
            key = (c.status == "running", c.attrs.get("Created", ""))
            if best is None or key > best[0]:
                best = (key, c, name)
    if best is None:
        return None, None
    return best[1], best[2]


def wait_task(runtime, engine: str, agent: str, filters: dict, timeout: float = TASK_WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container, node = find_task_container(runtime, engine, agent, filters)
        if container is not None and container.status == "running":
            return container, node
        time.sleep(0.3)
    raise ContainerFailed(f"agent {agent}: its service on swarm {engine} has no running task after "
                          f"{timeout:.0f} s (`docker service ps` on a manager says why)")


def stop_service(runtime, engine: str, name: str, container, timeout: int):
    """Scale the agent's service to no replica (it stays stopped) and stop its task's container
    now; returns that container as it was left."""
    from docker.errors import NotFound

    try:
        runtime.engines.client(engine).services.get(name).scale(0)
    except NotFound:
        pass
    try:
        if container.status in ("running", "paused", "restarting"):
            container.stop(timeout=timeout)
        container.reload()
    except NotFound:  # the swarm removed it meanwhile: its last known state, as exited
        container.attrs.setdefault("State", {}).update({"Status": "exited", "Running": False})
    return container


def remove_agent(runtime, engine: str, agent: str) -> bool:
    """Remove the agent's service (the swarm removes its tasks' containers). False: none."""
    from docker.errors import NotFound

    from crowdtui.runtime.container_info import container_name

    container = runtime._find(agent)
    if container is not None:  # a late "die" is still read as a stop
        runtime._stop_marker(agent).parent.mkdir(parents=True, exist_ok=True)
        runtime._stop_marker(agent).write_text(container.id)
    try:
        runtime.engines.client(engine).services.get(container_name(runtime.workspace, agent)).remove()
    except NotFound:
        return False
    if runtime.door is not None:
        remove_ipc_volumes(runtime, engine, agent)
    return True


def remove_ipc_volumes(runtime, engine: str, agent: str, timeout: float = 15) -> None:
    """The agent's IPC volume on each node engine, once the swarm removed its task there
    (bounded; a volume still in use is left, named in the log)."""
    from docker.errors import APIError

    from crowdtui.runtime.relay_container import remove_agent_ipc_volume

    filters = runtime._filters(agent)
    for node_engine in sorted(set(node_engines(runtime, engine).values())):
        client = runtime.engines.client(node_engine)
        deadline = time.monotonic() + timeout
        while client.containers.list(all=True, filters=filters) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            remove_agent_ipc_volume(client, runtime.workspace, agent)
        except APIError as exc:
            log.warning("agent %s: its IPC volume on engine %s stays: %s", agent, node_engine, exc)


def first_sight(runtime, agent: str, container) -> None:
    """A task container seen for the first time (the swarm made it, maybe on another node after
    one was lost): its node is recorded (that node's relay speaks for it from now on, the old
    node's no more), its doors held there, and its home gets the agent's files again (the last
    copy made at start)."""
    from crowdtui.runtime.agent_files import copy_saved_home
    from crowdtui.runtime.engines import record_node, recorded_engine

    if container.status != "running" or container.id in runtime.homed:
        return
    runtime.homed.add(container.id)
    node = runtime._seen.get(container.id)
    swarm = recorded_engine(runtime.workspace, agent)
    if node is not None and node != swarm:
        record_node(runtime.workspace, agent, swarm, node)
        if runtime.door is not None:
            try:
                runtime.door.open_doors(node, agent)
            except Exception as exc:  # the relay door's poll serves it soon anyway
                log.warning("agent %s: its doors on node %s: %s", agent, node, exc)
    try:
        copy_saved_home(runtime.workspace, agent, container)
    except Exception as exc:  # the agent runs; its files come with the next start
        log.warning("agent %s: files not copied into its new task container: %s", agent, exc)
