"""An engine's relay container and the agents' IPC volumes it serves (see docker/bin/crowd-relay).

On an engine that cannot see the host's folders, an agent's ``/run/crowd`` is a named volume
of its own, bound to ``agents/<agent>/`` inside the engine's relay volume; the relay holds
the agent's sockets there and carries them to the hub (``crowdtui.hub.relay_door``). Each
agent mounts only its own folder, so it can reach no socket but its own.

    start_relay(client, ws, "gpu-box", "hub.example.org:7443", credential)   # idempotent
    volume = ensure_agent_ipc_volume(client, ws, "gpu-box", "lead")           # mount at /run/crowd
    stop_relay(client, ws, "gpu-box")

``client`` is the docker-py client of *that* engine; ``credential`` is the engine's
``crowdtui.hub.relay_credentials.EngineCredential`` (anything with ``cert_pem``, ``key_pem``,
``hub_cert_pem`` and ``fingerprint``). All calls block: run them in a thread.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import time
from typing import Any

from crowdtui.agent_folder import AGENT_GID, AGENT_UID
from crowdtui.engine_config import WILDCARDS
from crowdtui.runtime import labels
from crowdtui.runtime.container_info import CONFIG_LABEL, ContainerFailed, check_name

RELAY_DIR = "/var/lib/crowd-relay"  # in the agent image, owned by the agent user
RELAY_LABEL = "crowdtui.relay"  # the engine a relay container or volume belongs to
CREDENTIAL_LABEL = "crowdtui.relay.credential"  # fingerprint of the engine certificate inside
_ENGINE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _engine(engine: str) -> str:
    if not isinstance(engine, str) or not _ENGINE.match(engine):
        raise ContainerFailed(f"engine name {engine!r} is not valid (lower-case letters, digits, '-', '_', '.')")
    return engine


def _labels(workspace, engine: str) -> dict[str, str]:
    return {labels.WORKSPACE: workspace.id, labels.ROOT: str(workspace.root), labels.KIND: "relay",
            RELAY_LABEL: engine}


def relay_container_name(workspace, engine: str) -> str:
    return f"crowd-relay-{_engine(engine)}-{workspace.id[:12]}"


def relay_volume_name(workspace, engine: str) -> str:
    return f"crowd-relay-{_engine(engine)}-{workspace.id[:12]}"


def agent_ipc_volume_name(workspace, agent: str) -> str:
    """The agent's ``/run/crowd`` on a relayed engine (one name per agent and workspace)."""
    return f"crowd-ipc-{check_name(agent)}-{workspace.id[:12]}"


def relay_container_config(workspace, engine: str, hub_address: str, image: str | None = None,
                           network: str = "bridge") -> dict[str, Any]:
    """The keyword arguments for ``client.containers.create`` (pure): hardened as the agents are —
    read-only root, every capability dropped, no-new-privileges, the agent user, small limits."""
    from docker.types import Mount

    if image is None:
        from crowdtui.runtime.container_spec import default_image

        image = default_image(workspace)
    host, sep, port = str(hub_address).rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ContainerFailed(f"hub address {hub_address!r} is not host:port; give the address the engine "
                              f"reaches the hub's relay door at")
    if host in WILDCARDS:
        raise ContainerFailed(f"the relay of engine {engine} cannot connect to {hub_address} (the relay door's "
                              f"listening address); set [engines.{engine}] relay_address (or [hub] "
                              f"relay_address) to the hub's address as that engine reaches it")
    config: dict[str, Any] = {
        "image": image,
        "command": ["crowd-relay"],
        "name": relay_container_name(workspace, engine),
        "labels": _labels(workspace, engine),
        "environment": {"CROWD_RELAY_HUB": str(hub_address), "CROWD_RELAY_ENGINE": engine,
                        "CROWD_RELAY_DIR": RELAY_DIR, "PYTHONDONTWRITEBYTECODE": "1"},
        "user": f"{AGENT_UID}:{AGENT_GID}",
        "init": True,
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=16m"},
        "pids_limit": 64,
        "mem_limit": 128 * 1024 * 1024,
        "memswap_limit": 128 * 1024 * 1024,
        "network_mode": network,
        "mounts": [Mount(RELAY_DIR, relay_volume_name(workspace, engine), type="volume")],
        "restart_policy": {"Name": "unless-stopped"},
        "log_config": {"type": "json-file", "config": {"max-size": "1m", "max-file": "2"}},
        "detach": True,
    }
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    config["labels"] = {**config["labels"], CONFIG_LABEL: digest[:16]}
    return config


def _credential_tar(credential) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo("credential")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, AGENT_UID, AGENT_GID
        tar.addfile(folder)
        for name, data, mode in (("cert.pem", credential.cert_pem, 0o600), ("key.pem", credential.key_pem, 0o600),
                                 ("hub.pem", credential.hub_cert_pem, 0o644)):
            info = tarfile.TarInfo(f"credential/{name}")
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, AGENT_UID, AGENT_GID, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def find_relay(client, workspace, engine: str):
    import docker.errors

    try:
        return client.containers.get(relay_container_name(workspace, engine))
    except docker.errors.NotFound:
        return None


def start_relay(client, workspace, engine: str, hub_address: str, credential, image: str | None = None,
                network: str = "bridge"):
    """Make sure the engine's relay runs with this configuration and credential; returns the container.

    A relay already running with the same configuration and credential is kept (its link and
    every agent's connection stay up); otherwise it is replaced."""
    import docker.errors

    config = relay_container_config(workspace, engine, hub_address, image, network)
    config["labels"][CREDENTIAL_LABEL] = credential.fingerprint[:16]
    volume = relay_volume_name(workspace, engine)
    try:
        client.volumes.get(volume)
    except docker.errors.NotFound:
        client.volumes.create(volume, labels=_labels(workspace, engine))
    current = find_relay(client, workspace, engine)
    if current is not None:
        same = all(current.labels.get(k) == config["labels"][k] for k in (CONFIG_LABEL, CREDENTIAL_LABEL))
        if same and current.status == "running":
            return current
        current.remove(force=True)
    container = client.containers.create(**config)
    try:
        # into the relay's volume (the root is read-only); only the relay's volume holds it,
        # and no agent mounts that volume's root
        if not container.put_archive(RELAY_DIR, _credential_tar(credential)):
            raise ContainerFailed(f"could not hand the relay of engine {engine} its credential")
        container.start()
    except BaseException:
        container.remove(force=True)
        raise
    return container


def stop_relay(client, workspace, engine: str, *, remove_volume: bool = False) -> bool:
    """Remove the engine's relay (its agents lose their doors until it is started again)."""
    import docker.errors

    container = find_relay(client, workspace, engine)
    if container is not None:
        container.remove(force=True)
    if remove_volume:
        try:
            client.volumes.get(relay_volume_name(workspace, engine)).remove(force=True)
        except docker.errors.NotFound:
            pass
    return container is not None


def ensure_agent_ipc_volume(client, workspace, engine: str, agent: str) -> str:
    """The agent's own IPC volume on the engine (bound to its folder in the relay's volume);
    returns its name, to mount at ``/run/crowd``. The engine's relay must be running."""
    import docker.errors

    agent = check_name(agent)
    relay = find_relay(client, workspace, engine)
    if relay is None or relay.status != "running":
        raise ContainerFailed(f"the relay of engine {engine} is not running; start it before its agents")
    result = relay.exec_run(["crowd-relay", "prepare", agent], user=f"{AGENT_UID}:{AGENT_GID}")
    if result.exit_code != 0:
        raise ContainerFailed(f"the relay of engine {engine} could not make {agent}'s folder: "
                              f"{result.output.decode(errors='replace')[:300]}")
    mountpoint = client.volumes.get(relay_volume_name(workspace, engine)).attrs["Mountpoint"]
    device = f"{mountpoint}/agents/{agent}"
    name = agent_ipc_volume_name(workspace, agent)
    try:
        volume = client.volumes.get(name)
        if (volume.attrs.get("Options") or {}).get("device") == device:
            return name
        volume.remove(force=True)  # bound to another engine's relay (the agent moved)
    except docker.errors.NotFound:
        pass
    client.volumes.create(name, driver="local", driver_opts={"type": "none", "o": "bind", "device": device},
                          labels={**_labels(workspace, engine), labels.AGENT: agent})
    return name


def remove_agent_ipc_volume(client, workspace, agent: str) -> bool:
    import docker.errors

    try:
        client.volumes.get(agent_ipc_volume_name(workspace, agent)).remove(force=True)
        return True
    except docker.errors.NotFound:
        return False


class RelayHookup:
    """What the runtime needs to give agents on a remote engine their hub door through that
    engine's relay (``Runtime.door``; set by the host, which knows the hub's side):

    * ``hub_address`` — ``HOST:PORT`` where the engines reach the hub's relay door;
    * ``addresses`` — engine -> ``HOST:PORT`` for an engine that reaches it elsewhere
      (``[engines.NAME] relay_address``; ``address_for(engine)``);
    * ``credential(engine)`` — the engine's relay credential (issued when it has none);
    * ``networks`` — engine -> the docker network its relay joins (``bridge`` when not named).

    ``prepare(client, workspace, engine, agent)`` (blocking) starts the engine's relay when it
    does not run with this configuration (idempotent) and returns the agent's IPC volume."""

    def __init__(self, hub_address: str, credential, image: str | None = None,
                 networks: dict[str, str] | None = None, addresses: dict[str, str] | None = None):
        self.hub_address = str(hub_address)
        self.credential = credential
        self.image = image
        self.networks = dict(networks or {})
        self.addresses = {k: str(v) for k, v in (addresses or {}).items() if v}

    def address_for(self, engine: str) -> str:
        """``HOST:PORT`` the relay of ``engine`` connects to."""
        return self.addresses.get(engine, self.hub_address)

    def start(self, client, workspace, engine: str):
        return start_relay(client, workspace, engine, self.address_for(engine), self.credential(engine),
                           image=self.image, network=self.networks.get(engine, "bridge"))

    def prepare(self, client, workspace, engine: str, agent: str) -> str:
        self.start(client, workspace, engine)
        relay = find_relay(client, workspace, engine)
        deadline = time.monotonic() + 10
        while relay is not None and relay.status != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
            relay.reload()
        return ensure_agent_ipc_volume(client, workspace, engine, agent)

    # Set by the host (crowdtui.host_relay.hookup), which knows the hub's side; None: not wired.
    #: ``secrets(engine, agent, payload, names)`` puts an agent's secrets on offer at the hub for one
    #: stream from that engine's relay (crowdtui.hub.relay_secrets); returns the offer (``wait``,
    #: ``error``, ``withdraw``). None: secrets cannot go through the relay here.
    secrets = None
    #: ``doors(engine, agent)`` opens the agent's hub doors (MCP, egress) and waits, bounded, until
    #: the engine's relay was told to hold them. None: the hub opens them once it sees it running.
    doors = None

    def offer_secrets(self, engine: str, agent: str, payload: bytes, names=()):
        """Blocking, any thread: the agent's secrets on offer through the engine's relay."""
        if self.secrets is None:
            raise ContainerFailed(f"agent {agent}: secrets cannot go through the relay of engine {engine} here")
        return self.secrets(engine, agent, payload, tuple(names))

    def open_doors(self, engine: str, agent: str) -> None:
        """Blocking: the agent's doors held by the relay (called once its placement is recorded)."""
        if self.doors is not None:
            self.doors(engine, agent)
