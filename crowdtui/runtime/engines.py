"""The connections to a workspace's Docker engines: one client per engine, made on first use.

What an engine is (``[engines.NAME]`` in crowd.toml) is :mod:`crowdtui.engine_config`; this
module connects to them (unix socket, tcp with TLS, ssh, a docker context), says how each
answers (``crowdtui engine check``), picks an engine for an agent (its ``engine:`` key, else
the placement policy) and makes the agent image present on an engine that lacks it (built
once on the local engine, copied by image id: ``images.save`` -> ``images.load``).

Traps (FIELD-NOTES "Several engines"): ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the
environment override docker-py's ``TLSConfig(ca_cert=…)``, so a TLS client here does not read
the environment (``trust_env = False``); ssh needs the port in the URL and checks
``~/.ssh/known_hosts``; ``use_ssh_client=True`` stalls terminal reads, so paramiko it is.
Over ssh every HTTP connection is a session of one ssh connection, and sshd allows 10 at once
(``MaxSessions``); docker-py keeps a pool *per request URL* (9 of them) each holding its idle
session, so the 11th session — an events stream, an attach, a put_archive — was refused
("Secsh channel open FAILED: Connect failed"). An ssh client keeps at most ``SSH_POOLS`` pools of
``SSH_POOL_SIZE`` idle sessions, leaving the rest for streams (see ``SSH_POOLS``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from crowdtui.engine_config import LOCAL, EngineConfigError, EngineSpec, Placement, choose, engines_of
from crowdtui.errors import EngineUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 60  # seconds an SDK call may take (also the read timeout of attach streams)
#: idle ssh sessions an ssh:// client keeps (pools x size): sshd's default MaxSessions is 10 per
#: connection, and each events stream, attach and exec holds one more while it runs
SSH_POOLS, SSH_POOL_SIZE = 2, 2
PING_TIMEOUT = 5  # seconds a remote engine gets to answer a ping before it counts as unreachable


def client_for(spec: EngineSpec, timeout: int = CONNECT_TIMEOUT):
    """A ``docker.DockerClient`` for ``spec`` (not yet asked anything)."""
    import docker
    from docker.tls import TLSConfig

    url, tls = spec.url, None
    if spec.context:
        from docker.context import ContextAPI

        ctx = ContextAPI.get_context(spec.context)
        if ctx is None:
            raise EngineConfigError(f"engine {spec.name}: no docker context {spec.context!r} "
                                    "(`docker context ls` lists them)")
        url, tls = ctx.Host, ctx.TLSConfig
    elif spec.tls:
        tls = TLSConfig(client_cert=(spec.tls_cert, spec.tls_key) if spec.tls_cert else None,
                        ca_cert=spec.tls_ca or None, verify=spec.tls_verify and (spec.tls_ca or True))
    if url.startswith("tcp://") and tls:
        url = "https://" + url[len("tcp://"):]
    from docker.constants import MINIMUM_DOCKER_API_VERSION

    # Not version="auto": that asks the engine inside the constructor, before the
    # environment can be shut out. Ask once trust_env is off, and speak the engine's version.
    pools = {"num_pools": SSH_POOLS, "max_pool_size": SSH_POOL_SIZE} if url.startswith("ssh://") else {}
    client = docker.DockerClient(base_url=url, tls=tls or False, timeout=timeout,
                                 version=MINIMUM_DOCKER_API_VERSION, use_ssh_client=False, **pools)
    client.api.trust_env = False  # CA bundles and proxies from the environment must not win
    try:
        client.api._version = client.api._retrieve_server_version()
    except Exception:
        client.close()
        raise
    return client


def connect_spec(spec: EngineSpec, timeout: int = CONNECT_TIMEOUT):
    """A client for ``spec`` that answered a ping, or ``EngineUnavailable`` naming the engine."""
    try:
        client = client_for(spec, timeout)
    except EngineConfigError:
        raise
    except Exception as exc:
        raise EngineUnavailable(f"engine {spec.name} ({spec.where()}): cannot connect: {exc}") from exc
    try:
        _ping(client, PING_TIMEOUT)
    except Exception as exc:
        client.close()
        raise EngineUnavailable(f"engine {spec.name} ({spec.where()}) does not answer: "
                                f"{str(exc)[:300]}; start it, or check `crowdtui engine check`") from exc
    return client


def _ping(client, timeout: float) -> None:
    """``client.ping()`` with a bounded wait (the client's own timeout is for long calls)."""
    api = client.api
    res = api._get(api._url("/_ping"), timeout=timeout)
    api._raise_for_status(res)


class Engines:
    """The engines of one workspace, each connected on first use and kept.

    ``local`` is the client given (or connected from the environment); the others come from
    crowd.toml. ``client(name)`` raises ``EngineUnavailable`` when the engine does not answer.
    """

    def __init__(self, workspace, local_client=None):
        self.workspace = workspace
        self.specs: dict[str, EngineSpec] = engines_of(workspace.config, workspace.root)
        self.placement = Placement.from_config(workspace.config)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        if local_client is not None:
            self._clients[LOCAL] = local_client

    def names(self) -> list[str]:
        return list(self.specs)

    def spec(self, name: str) -> EngineSpec:
        try:
            return self.specs[name]
        except KeyError:
            pass
        if name in self._on_file_now():
            raise EngineConfigError(f"engine {name!r} was added to crowd.toml after this process started "
                                    "(`crowdtui engine add`); restart the console or `crowdtui serve` to use it")
        raise EngineConfigError(f"no engine {name!r}; the engines are {', '.join(self.specs)}")

    def _on_file_now(self) -> set[str]:
        """The engine names crowd.toml has now (it may have changed since this process read it)."""
        from crowdtui.workspace import load_workspace

        try:
            ws = load_workspace(self.workspace.root)
            return set(engines_of(ws.config, ws.root))
        except Exception:
            return set()

    def client(self, name: str = LOCAL):
        """The engine's client (connected and pinged the first time)."""
        with self._lock:
            client = self._clients.get(name)
        if client is not None:
            return client
        spec = self.spec(name)
        if spec.local and spec.url == "":
            raise EngineUnavailable("no local engine")
        client = connect_spec(spec)
        with self._lock:
            have = self._clients.setdefault(name, client)
        if have is not client:
            client.close()
        return have

    def connected(self) -> dict[str, Any]:
        """The clients made so far (name -> client)."""
        with self._lock:
            return dict(self._clients)

    def forget(self, name: str) -> None:
        """Drop a client (after its engine went away: the next use connects again)."""
        with self._lock:
            client = self._clients.pop(name, None)
        if client is not None and name != LOCAL:
            try:
                client.close()
            except Exception:
                pass

    def answers(self, name: str) -> bool:
        try:
            _ping(self.client(name), PING_TIMEOUT)
            return True
        except Exception:
            return False

    def free_memory(self, name: str) -> int | None:
        """Bytes of memory the engine's host has beyond what running containers were promised
        (their memory limits); None when the engine does not answer."""
        try:
            client = self.client(name)
            total = int(client.info().get("MemTotal") or 0)
            promised = 0
            for c in client.api.containers(filters={"status": "running"}):
                promised += int((client.api.inspect_container(c["Id"]).get("HostConfig") or {})
                                .get("Memory") or 0)
            return max(0, total - promised)
        except Exception:
            return None

    def place(self, agent) -> str:
        """The engine ``agent`` (an ``AgentDef``) runs on: its ``engine:``, else the policy's choice."""
        if agent.engine:
            self.spec(agent.engine)
            return agent.engine
        candidates = self.placement.candidates(self.specs, tuple(agent.engine_labels))
        if not candidates:
            raise EngineConfigError(f"agent {agent.name}: no engine has the labels "
                                    f"{', '.join(agent.engine_labels)} (crowd.toml [engines.NAME] labels)")
        if len(candidates) == 1:
            return candidates[0]
        chosen = choose(candidates, {n: self.free_memory(n) for n in candidates})
        if chosen is None:
            raise EngineUnavailable(f"agent {agent.name}: none of the engines {', '.join(candidates)} answers")
        return chosen

    def check(self, name: str) -> dict[str, Any]:
        """How the engine answers, for ``crowdtui engine check``."""
        spec = self.spec(name)
        out: dict[str, Any] = {**spec.to_json(), "ok": False, "version": None, "engine_id": None,
                               "memory": None, "free_memory": None, "containers": None,
                               "swarm_node": None, "ms": None, "error": None}
        began = time.monotonic()
        try:
            client = self.client(name)
            _ping(client, PING_TIMEOUT)
            info = client.info()
            out.update(ok=True, version=client.version().get("Version"), engine_id=info.get("ID"),
                       memory=info.get("MemTotal"), containers=info.get("Containers"),
                       swarm_node=(info.get("Swarm") or {}).get("NodeID") or None,
                       free_memory=self.free_memory(name))
        except Exception as exc:
            self.forget(name)
            out["error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        out["ms"] = round((time.monotonic() - began) * 1000, 1)
        return out

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                client.close()
            except Exception:
                pass


def copy_image(source, target, image: str, progress: Callable[[str], None] = lambda line: None) -> str:
    """Make ``image`` (present on ``source``) present on ``target``; returns its id.

    Nothing is copied when ``target`` has the same id already; else the image is streamed
    from one engine to the other (``save`` -> ``load``, with its tags)."""
    from docker.errors import ImageNotFound

    wanted = source.images.get(image)
    try:
        if target.images.get(image).id == wanted.id:
            return wanted.id
    except ImageNotFound:
        pass
    progress(f"copying image {image} ({wanted.short_id}) to another engine")
    target.images.load(wanted.save(named=True))
    return target.images.get(image).id


# --------------------------------------------------------------------------- where each agent was placed


def _record_path(workspace, agent: str):
    return workspace.crowd_dir / "run" / "engine" / agent


def recorded_engine(workspace, agent: str) -> str:
    """The engine ``agent``'s container was last made on (``local`` when none was recorded)."""
    try:
        text = _record_path(workspace, agent).read_text().strip()
    except OSError:
        return LOCAL
    return text if text in engines_of_names(workspace) else LOCAL


def engines_of_names(workspace) -> tuple[str, ...]:
    from crowdtui.engine_config import engine_names

    return engine_names(workspace.config)


def record_engine(workspace, agent: str, engine: str) -> None:
    """``agent``'s container is made on ``engine`` now; the node its Swarm task ran on is
    forgotten (it is recorded again once the new task is seen: ``record_node``)."""
    path = _record_path(workspace, agent)
    _node_path(workspace, agent).unlink(missing_ok=True)
    if engine == LOCAL:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(engine)
    tmp.replace(path)


def _node_path(workspace, agent: str):
    return workspace.crowd_dir / "run" / "node" / agent


def record_node(workspace, agent: str, swarm: str, node: str) -> None:
    """``agent``'s task on the swarm ``swarm`` runs on the node whose engine (of crowd.toml) is
    ``node`` (written when the runtime first sees the task there, at start or after a move)."""
    path = _node_path(workspace, agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{swarm} {node}")
    tmp.replace(path)


def recorded_node(workspace, agent: str) -> str | None:
    """The node engine ``agent``'s Swarm task was last seen on; None when it is not placed on a
    swarm, or its task was not seen since it was placed there (the record names the swarm, and
    holds only while the placement record still names that swarm)."""
    try:
        swarm, _, node = _node_path(workspace, agent).read_text().strip().partition(" ")
    except OSError:
        return None
    specs = engines_of(workspace.config, workspace.root)
    if not node or node == swarm or swarm not in specs or node not in specs:
        return None
    if specs[swarm].mode != "swarm" or specs[node].mode == "swarm" or node == LOCAL:
        return None
    return node if recorded_engine(workspace, agent) == swarm else None


def agents_served_on(workspace, engine: str) -> list[str]:
    """The agents whose container runs on ``engine`` as far as the records say: those placed on
    it, and those placed on a Swarm whose task was last seen on the node that ``engine`` is.
    The relay door's trust (``crowdtui.host_relay.placed_on``)."""
    spec = engines_of(workspace.config, workspace.root).get(engine)
    # a Swarm entry itself runs no relay: its agents count for the node engine their task runs on
    placed = set(agents_recorded_on(workspace, engine)) if spec is not None and spec.mode != "swarm" else set()
    folder = workspace.crowd_dir / "run" / "node"
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".tmp")
    except OSError:
        names = []
    placed.update(a for a in names if recorded_node(workspace, a) == engine)
    return sorted(placed)


def agents_recorded_on(workspace, engine: str) -> list[str]:
    """The agents whose containers were last made on ``engine`` (not ``local``)."""
    folder = workspace.crowd_dir / "run" / "engine"
    try:
        entries = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".tmp")
    except OSError:
        return []
    return [p.name for p in entries if p.read_text().strip() == engine]
