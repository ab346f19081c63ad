"""The hub: one MCP server for a workspace, one door (unix socket) per running agent.

    hub = Hub(workspace, store)
    await hub.start()                 # takes the workspace's hub lock
    await hub.open_door("lead")       # .crowd/ipc/lead/mcp.sock, and lead's .mcp.json
    await hub.close_door("lead")
    await hub.stop()

Which socket a connection arrives on is the caller's identity. With ``http_port`` (or
the workspace's ``[hub] http_port``) the same tools are also served over streamable
HTTP on ``http_host`` (127.0.0.1), each agent with its own bearer token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from crowdtui.agent_folder import AgentFolder, UnsafeEntry, finding_event, home_folder, ipc_folder
from crowdtui.errors import CrowdError
from crowdtui.hub.bounds import ConnectionBudget, RefusalReporter, refuse_connection, return_memory
from crowdtui.hub.directory import DefinitionSource, Directory, roster_definitions
from crowdtui.hub.eventlog import EventLog
from crowdtui.hub.limits import DEFAULT as DEFAULT_LIMITS
from crowdtui.hub.limits import TOO_MANY_CONNECTIONS, Limits, raise_open_file_limit
from crowdtui.hub.hub_lock import HubLock
from crowdtui.hub.server import build_server
from crowdtui.hub.unix_transport import MAX_LINE, serve_connection
from qms.follow import EventFollower

log = logging.getLogger(__name__)

SOCKET_NAME = "mcp.sock"
MCP_JSON = ".mcp.json"
RUNNING = "running"
MCP_CONFIG = {"command": "crowd-mcp-bridge"}
REGISTRY_KINDS = ("agent.state", "agent.registered", "agent.removed")  # doors follow these


class HubError(CrowdError):
    pass


@dataclass
class Door:
    agent: str
    path: Path
    server: asyncio.AbstractServer
    writers: set = field(default_factory=set)
    tasks: set = field(default_factory=set)
    calls: asyncio.Semaphore | None = None  # the agent's calls running at once, over all its connections


def _with_runner(definition, workspace):
    """The definition with its runner's egress (model API) folded in (crowdtui.runners.effective)."""
    if definition is None or not hasattr(definition, "runner"):
        return definition
    from crowdtui.runners import effective

    return effective(definition, getattr(workspace, "config", None))


def write_mcp_config(folder: AgentFolder) -> Path:
    """Point the agent's MCP client (Claude Code reads ``~/.mcp.json``) at the bridge.

    ``folder`` is the agent's home (:class:`crowdtui.agent_folder.AgentFolder`): the file is
    read and written without following anything the agent placed there. A link, FIFO or
    oversized file in its place is not read; crowdtui's own file replaces it (noted in
    ``folder.findings``). The agent's other servers are kept.
    """
    data: dict[str, Any] = {}
    try:
        raw = folder.read(MCP_JSON)
    except UnsafeEntry:
        raw = None
    if raw is not None:
        try:
            parsed = json.loads(raw)
            data = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            data = {}
    servers = data.get("mcpServers") if isinstance(data.get("mcpServers"), dict) else {}
    if servers.get("crowd") == MCP_CONFIG and raw is not None:
        return folder.root / MCP_JSON
    servers["crowd"] = dict(MCP_CONFIG)
    data["mcpServers"] = servers
    return folder.write(MCP_JSON, json.dumps(data, indent=2) + "\n", mode=0o644)


@dataclass(frozen=True)
class _NoDefinition:
    """An agent without a roster definition: no egress (network none)."""

    name: str
    network: str = "none"


class Hub:
    def __init__(
        self,
        workspace,
        store,
        *,
        definitions: DefinitionSource | None = None,
        http_port: int | None = None,
        http_host: str | None = None,
        max_line: int = MAX_LINE,
        limits: Limits | None = None,
    ):
        self.workspace = workspace
        self.store = store
        workspace.configure_store(store)  # crowd.toml's [quotas] and [documents] for every agent it serves
        self.directory = Directory(store, definitions if definitions is not None else roster_definitions(workspace))
        self.http_port = http_port if http_port is not None else int(workspace.setting("hub", "http_port", 0) or 0)
        self.http_host = http_host or str(workspace.setting("hub", "http_host", "127.0.0.1") or "127.0.0.1")
        self.limits = limits or DEFAULT_LIMITS
        if max_line != MAX_LINE:
            self.limits = replace(self.limits, max_request=max_line)
        self.max_line = self.limits.max_request
        self.budget = ConnectionBudget(self.limits.connection_budget())  # set again at start()
        self.refusals = RefusalReporter(self._refusal_event, self.limits.refusal_event_every)
        self.lock = HubLock(workspace.crowd_dir / "run" / "hub.lock")
        self.doors: dict[str, Door] = {}
        from crowdtui.hub.egress import EgressProxy

        self.egress = EgressProxy(workspace, store, limits=self.limits, budget=self.budget,
                                  refusals=self.refusals)  # network: allowlist agents' proxy, beside their MCP door
        self.server = None
        self.audit = EventLog(store)  # every tool call's record (grouped writes; drained at stop)
        self.http_url: str | None = None
        self._http = None
        self._http_task: asyncio.Task | None = None
        self._follow_task: asyncio.Task | None = None
        self._policy_tasks: list[asyncio.Task] = []
        self.announcer = None
        self.launcher = None
        self.supervisor = None
        from crowdtui.hub.manage_tools import AgentManager

        # the agent-management tools act with the hub's runtime once it has one (run_policies)
        self.manager = AgentManager(workspace, store, self.directory, open_door=self.open_door,
                                    close_door=self.close_door)
        self.relay = None  # the relay door (crowdtui.hub.relay_door), once open_relay_door is called
        self._started = False

    # ---- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self.lock.acquire()
        before, after = raise_open_file_limit()
        if after != before:
            log.info("raised the open-file limit from %d to %d", before, after)
        self.budget.total = self.limits.connection_budget(after)
        try:
            from crowdtui.hub.tokens import agent_for_token

            async def http_identity(request) -> str | None:
                header = request.headers.get("authorization", "")
                scheme, _, token = header.partition(" ")
                return await agent_for_token(self.store, token.strip()) if scheme.lower() == "bearer" else None

            self.server = build_server(self.store, self.directory, http_identity, events=self.audit)
            from crowdtui.hub.manage_tools import add_manage_tools

            add_manage_tools(self.server, self.manager)
            from crowdtui.hub.approval_tools import add_approval_tools

            add_approval_tools(self.server, self.store, self.directory)
            if self.http_port:
                await self._start_http()
        except BaseException:
            self.lock.release()
            raise
        self._started = True
        await self._event("hub.started", "", {"pid": os.getpid(), "http": self.http_url})

    async def stop(self) -> None:
        if not self._started:
            return
        for task in self._policy_tasks:
            task.cancel()
        for task in self._policy_tasks:
            try:
                await task
            except BaseException:
                pass
        self._policy_tasks = []
        self.announcer = self.launcher = self.supervisor = None
        if self._follow_task is not None:
            self._follow_task.cancel()
            try:
                await self._follow_task
            except BaseException:
                pass
            self._follow_task = None
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        for name in list(self.doors):
            await self.close_door(name)
        if self._http is not None:
            self._http.should_exit = True
            try:
                await asyncio.wait_for(self._http_task, 10)
            except BaseException:
                self._http_task.cancel()
            self._http = self._http_task = None
            self.http_url = None
        await self.audit.drain()  # every call answered has its record on disk before the hub says stopped
        await self._event("hub.stopped", "", {"pid": os.getpid()})
        self._started = False
        self.lock.release()

    async def __aenter__(self) -> "Hub":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ---- doors -------------------------------------------------------------------

    def socket_path(self, agent: str) -> Path:
        return self.workspace.ipc_dir(agent) / SOCKET_NAME

    async def open_door(self, agent: str) -> Path:
        """Listen on the agent's own socket; returns its host path. Idempotent."""
        from qms.names import validate_name

        if not self._started:
            raise HubError("the hub is not started; call `await hub.start()` first")
        validate_name(agent)
        if agent in self.doors:
            return self.doors[agent].path
        if await self.directory.info(agent) is None:
            raise HubError(f"no agent named {agent!r} is registered; add it to the roster before opening its door")
        path = self.socket_path(agent)
        ipc = ipc_folder(self.workspace, agent)
        try:
            sock = ipc.bind_socket(SOCKET_NAME)
        finally:
            await self.record_findings(ipc)
        door = Door(agent=agent, path=path, server=None)  # type: ignore[arg-type]

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve_door(door, reader, writer)

        door.server = await asyncio.start_unix_server(on_connect, sock=sock, limit=self.limits.read_chunk)
        self.doors[agent] = door
        home = home_folder(self.workspace, agent)
        try:
            write_mcp_config(home)
        finally:
            await self.record_findings(home)
        try:  # the egress door (only for network: allowlist); a bad list must not keep the MCP door shut
            await self.egress.open_door(_with_runner(self.directory.definition(agent), self.workspace)
                                        or _NoDefinition(agent))
        except Exception as exc:
            log.warning("could not open the egress door of %s: %s", agent, exc)
        self._tell_relays()
        await self._event("hub.door_opened", agent, {"socket": str(path)})
        log.info("door open for %s (%s)", agent, path)
        return path

    def _tell_relays(self) -> None:
        """Doors or placement changed: the relays get their SERVE list now, not at their next poll
        (a remote agent's socket appears as soon as its door opens)."""
        if self.relay is not None:
            self.relay.refresh()

    async def open_relay_door(self, agents_on_engine, *, host: str | None = None, port: int | None = None):
        """Accept the relays of remote engines (``crowdtui.hub.relay_door.RelayDoor``), trusted each for
        the agents ``agents_on_engine(engine)`` places on its engine; ``[hub] relay_host`` / ``relay_port``
        when not given. Idempotent; returns the door (its ``address`` is where it listens)."""
        from crowdtui.hub.relay_door import RelayDoor

        if not self._started:
            raise HubError("the hub is not started; call `await hub.start()` first")
        if self.relay is None:
            host = host or str(self.workspace.setting("hub", "relay_host", "127.0.0.1") or "127.0.0.1")
            port = int(port if port is not None else self.workspace.setting("hub", "relay_port", 0) or 0)
            relay = RelayDoor(self, agents_on_engine, host=host, port=port)
            await relay.start()
            self.relay = relay
        return self.relay

    async def _serve_door(self, door: Door, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection on an agent's door: admitted within the limits, or refused with one line."""
        key = f"mcp:{door.agent}"
        reason = self.budget.admit(key, self.limits.connections_per_door)
        if reason is not None:
            self.refusals.refused(door.agent, "mcp", "connections",
                                  {"limit": self.limits.connections_per_door, "total": self.budget.total})
            await refuse_connection(writer, TOO_MANY_CONNECTIONS,
                                    f"connection refused: {reason}; close connections you no longer use, "
                                    f"or retry later")
            return
        if door.calls is None:
            door.calls = asyncio.Semaphore(self.limits.calls_per_door)
        task = asyncio.current_task()
        door.writers.add(writer)
        door.tasks.add(task)
        try:
            await serve_connection(self.server, door.agent, reader, writer, self.limits, door.calls,
                                   lambda reason, detail: self.refusals.refused(door.agent, "mcp", reason, detail))
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection of %s failed", door.agent)
        finally:
            door.writers.discard(writer)
            door.tasks.discard(task)
            self.budget.release(key)
            return_memory()

    async def _refusal_event(self, kind: str, agent: str, detail: dict) -> None:
        await self._event(kind, agent, detail)

    async def close_door(self, agent: str) -> None:
        await self.egress.close_door(agent)
        door = self.doors.pop(agent, None)
        if door is None:
            return
        door.server.close()
        for writer in list(door.writers):
            writer.transport.abort()  # drop what an unread answer left buffered
        tasks = list(door.tasks)
        for task in tasks:  # calls still running (a waiting get_messages) end with the door
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        ipc_folder(self.workspace, agent).unlink(door.path.name)
        self._tell_relays()
        await self._event("hub.door_closed", agent, {})
        log.info("door closed for %s", agent)

    async def open_running_doors(self) -> list[str]:
        """Open doors for every agent the registry says is running; returns their names."""
        opened = []
        for a in await self.store.list_agents():
            if a.state == RUNNING and a.name not in self.doors:
                try:
                    await self.open_door(a.name)
                except Exception as exc:  # one bad agent must not keep the others out
                    log.warning("could not open the door of %s: %s", a.name, exc)
                    continue
                opened.append(a.name)
        return opened

    def follow_registry(self, interval: float = 0.5) -> asyncio.Task:
        """Keep doors in step with the registry: open for agents that start, close for those that stop."""
        if self._follow_task is None:
            self._follow_task = asyncio.create_task(self._follow(interval), name="hub-follow-registry")
        return self._follow_task

    async def _follow(self, interval: float) -> None:
        events = EventFollower(self.store, kinds=REGISTRY_KINDS, interval=interval)
        await events.start()
        try:
            await self.open_running_doors()
        except Exception:
            log.exception("opening doors for running agents failed; following anyway")
        async for batch in events:
            try:
                for name in {e.subject for e in batch}:
                    agent = await self.store.get_agent(name)
                    if agent is not None and agent.state == RUNNING:
                        if name not in self.doors:
                            await self.open_door(name)
                    elif name in self.doors:
                        await self.close_door(name)
                self._tell_relays()  # a restart elsewhere keeps the door open but moves the agent
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following the registry failed; retrying")

    # ---- announcements and launch policies ------------------------------------------

    def run_policies(self, runtime, pool=None, *, announce: bool = True, launch: bool = True,
                     supervise: bool = True) -> None:
        """Announce new inbox items in agents' terminals, apply launch/shutdown policies and
        supervise (restarts, leases of dead holders, stuck agents: ``crowdtui.hub.supervisor``).

        ``runtime`` is a ``crowdtui.runtime.containers.Runtime``; ``pool`` a shared
        ``SessionPool`` (the app passes its own so notices go through the same terminals).
        """
        from crowdtui.hub.announce import Announcer, pty_typist
        from crowdtui.hub.launch_policy import LaunchPolicy, runtime_actions

        if self.manager.runtime is None:
            self.manager.runtime = runtime
        if pool is None:
            from crowdtui.runtime.pty import SessionPool

            pool = SessionPool(runtime.client, resolve=runtime.client_for_container)
        if announce and self.announcer is None:
            self.announcer = Announcer(self.store, self.directory, pty_typist(runtime, pool))
            self._policy_tasks.append(asyncio.create_task(self.announcer.run(), name="hub-announcer"))
        if launch and self.launcher is None:
            start, stop = runtime_actions(runtime, self.store, self.directory.definition)
            self.launcher = LaunchPolicy(self.store, self.directory, start, stop)
            self._policy_tasks.append(asyncio.create_task(self.launcher.run(), name="hub-launch-policy"))
        if supervise and self.supervisor is None:
            from crowdtui.hub.launch_policy import runtime_paused, runtime_probe
            from crowdtui.hub.supervisor import Supervisor

            start, _ = runtime_actions(runtime, self.store, self.directory.definition, by="supervisor")
            self.supervisor = Supervisor(self.store, self.directory, start, runtime_probe(runtime),
                                         paused=runtime_paused(runtime))
            self._policy_tasks.append(asyncio.create_task(self.supervisor.run(), name="hub-supervisor"))

    # ---- streamable HTTP -------------------------------------------------------------

    async def _start_http(self) -> None:
        import uvicorn
        from mcp.server.transport_security import TransportSecuritySettings

        from crowdtui.hub.http_app import token_guard
        from crowdtui.hub.http_limits import bounded_h11_protocol

        port = self.http_port
        loopback = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        extra = [str(h) for h in (self.workspace.setting("hub", "http_allowed_hosts", []) or [])]
        if self.http_host in ("127.0.0.1", "localhost", "::1") or extra:
            # Host headers are checked (DNS rebinding): loopback names, plus what crowd.toml
            # lists in [hub] http_allowed_hosts (e.g. "hub.example.org:*") for remote agents.
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=loopback + extra,
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
                + [f"https://{h}" for h in extra] + [f"http://{h}" for h in extra],
            )
        else:
            # Listening for other machines with no host list: the bearer token is the guard.
            log.warning("hub HTTP on %s accepts any Host header; list names in crowd.toml "
                        "[hub] http_allowed_hosts to check them", self.http_host)
            security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        mcp_app = self.server.streamable_http_app(
            streamable_http_path="/mcp", transport_security=security, host=self.http_host,
            stateless_http=True, json_response=True, max_request_body_size=self.max_line,
        )
        app = token_guard(mcp_app, self.store)
        limits = self.limits
        config = uvicorn.Config(
            app, host=self.http_host, port=port, log_level="warning", lifespan="on",
            http=bounded_h11_protocol(limits.http_connections, limits.http_head_timeout),
            # uvicorn counts the connection itself: one more, so the last admitted one is served
            limit_concurrency=limits.http_connections + 1, timeout_keep_alive=limits.http_keep_alive,
            h11_max_incomplete_event_size=limits.http_max_head, backlog=limits.http_backlog,
        )
        server = uvicorn.Server(config)
        self._http = server
        self._http_task = asyncio.create_task(server.serve(), name="hub-http")
        for _ in range(200):
            if server.started or self._http_task.done():
                break
            await asyncio.sleep(0.05)
        if not server.started:
            self._http_task.cancel()
            self._http = self._http_task = None
            raise HubError(f"the hub could not listen on http://{self.http_host}:{port}; pick a free port in crowd.toml [hub] http_port")
        actual = server.servers[0].sockets[0].getsockname()[1]
        self.http_url = f"http://{self.http_host}:{actual}/mcp"

    # ---- helpers ---------------------------------------------------------------------

    async def record_findings(self, folder: AgentFolder) -> None:
        """One ``agent.unsafe_file`` event for each thing the agent left in crowdtui's way."""
        for finding in folder.findings:
            kind, subject, detail = finding_event(finding)
            log.warning("agent %s: %s in its %s is %s (%s)", finding.agent, finding.path, finding.folder,
                        finding.found, finding.action)
            await self._event(kind, subject, detail)
        folder.findings.clear()

    async def _event(self, kind: str, subject: str, detail: dict) -> None:
        try:
            await self.store.append_event("hub", kind, subject, detail)
        except Exception:
            log.exception("could not record %s", kind)
