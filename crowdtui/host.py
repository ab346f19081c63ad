"""The host: one assembly of store, roster, runtime, hub and dispatch for a workspace.

Every entry point that serves agents runs a ``Host``: ``crowdtui serve`` and ``crowdtui
hub`` (headless), the console's own hub and ``crowdtui web``. So every agent gets the
same MCP tools (the hub's and dispatch's routes, tasks and ``reply``) and the same
policies, whoever started the host. Parts, in start order:

1. the store (opened here unless given) and the roster: synced into the registry, then
   followed while the host runs (``crowdtui.roster.follow_roster``);
2. the Docker runtime: container states followed (``StateFollower``), so the supervisor
   sees crashes wherever the host runs. No Docker engine is not fatal: the host says so
   and serves the agents the registry knows, without launch policies;
3. the hub (one per workspace: ``.crowd/run/hub.lock``) with dispatch's tools, doors
   following the registry, announcements, launch/shutdown policies and the supervisor;
4. dispatch, the chat side (routing, outbound, channel health, scheduler) and its HTTP side for chat
   channels on 127.0.0.1, described in ``.crowd/run/serve.json``. One dispatch per
   workspace (``.crowd/run/serve.lock``): when another process runs it (``crowdtui serve
   --no-hub``), this host serves the tools and leaves the loops to that one.

``stop()`` undoes what ``start()`` did, in reverse order; agents keep running. Options
that leave a part out exist only where a user asks for it (``serve --no-hub``,
``serve --no-runtime``, ``hub --no-dispatch``) or where the caller does that part itself
(the console follows the roster and container states for its own views).

Layer: above ``dispatch`` (it assembles hub, runtime, roster and dispatch), below ``tui`` and
``cli``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from crowdtui.errors import CrowdError

logger = logging.getLogger(__name__)

Log = Callable[[str], None]
#: seconds each part may take to stop before the host moves on
STOP_TIMEOUT = 15.0


def _log_info(line: str) -> None:
    logger.info("%s", line)


class HostAlreadyRunning(CrowdError):
    """Another process runs this workspace's hub (or, for ``serve``, its dispatch)."""

    def __init__(self, message: str, pid: Any = None) -> None:
        super().__init__(message)
        self.pid = pid  # the running host's pid, when its lock names one


@dataclass
class HostOptions:
    hub: bool = True  # False: ``serve --no-hub`` (dispatch only, no MCP doors)
    runtime: bool = True  # False: ``serve --no-runtime`` (no Docker: nothing started or stopped)
    dispatch: bool = True  # False: ``hub --no-dispatch`` (dispatch's tools still served, its loops not run)
    dispatch_required: bool = False  # ``serve``: fail when another process runs dispatch
    dispatch_host: str = "127.0.0.1"
    dispatch_port: int | None = None  # None: crowd.toml [dispatch] port (Workspace.dispatch_port)
    dispatch_config: Any = None  # crowdtui.dispatch.service.DispatchConfig
    hub_http_port: int | None = None  # None: crowd.toml [hub] http_port
    hub_http_host: str | None = None
    follow_roster: bool = True  # sync and follow agents/ (the console does both itself: it shows them)
    follow_states: bool = True  # the console follows container states itself


class Host:
    """``async with Host(workspace) as host:`` — or ``await host.start()`` / ``await host.stop()``."""

    def __init__(self, workspace, store=None, options: HostOptions | None = None, *,
                 log: Log = _log_info, runtime: Any = None, pool: Any = None) -> None:
        self.workspace = workspace
        self.options = options or HostOptions()
        self.log = log
        self.store = store
        self._own_store = store is None
        self.runtime = runtime  # given: the caller's (the console's; not closed here); else connected at start
        self.pool = pool
        self.hub: Any = None
        self.dispatch: Any = None
        self.launcher: Any = None
        self.dispatch_url: str | None = None
        self.dispatch_elsewhere: dict | None = None  # the other dispatch's lock info, when it runs elsewhere
        self.runtime_problem: str | None = None
        self.started_at: float | None = None
        self._dispatch_lock: Any = None
        self._cleanup: list[tuple[str, Callable[[], Any]]] = []
        self._roster: Any = None  # the roster synced at start (the follower diffs against it)
        self._policies = False
        self._started = False

    # ---- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> "Host":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every part; on any failure, stop what started and raise. Raises
        ``HostAlreadyRunning`` when another process has this workspace's hub."""
        if self._started:
            return
        opts = self.options
        try:
            if opts.dispatch and opts.dispatch_required:
                self._take_dispatch_lock(required=True)  # serve: refuse before touching anything
            if self.store is None:
                self.store = await self.workspace.open_store()
                self._cleanup.append(("store", self.store.close))
            if opts.follow_roster:
                await self._sync_roster()
            if opts.runtime and self.runtime is None:
                await self._connect_runtime()
            if self.runtime is not None and opts.follow_states:
                await self._follow_states()
            self.dispatch = self._make_dispatch()
            if opts.hub:
                await self._start_hub()
            if opts.dispatch and self._dispatch_lock is None:
                self._take_dispatch_lock(required=False)
            if opts.follow_roster:
                self._start_roster_follower()
            if self._dispatch_lock is not None:
                await self._start_dispatch()
            self._start_policies()
        except BaseException:
            await self._unwind()
            raise
        self._started = True
        self.started_at = time.time()
        if self.launcher is not None and self.runtime is not None and self._dispatch_lock is not None:
            for name in await self.launcher.start_always():
                self.log(f"started {name} (launch always)")

    async def stop(self) -> None:
        """Stop every part in reverse order (agents keep running)."""
        await self._unwind()
        self._started = False

    async def _unwind(self) -> None:
        while self._cleanup:
            name, fn = self._cleanup.pop()
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, STOP_TIMEOUT)
            except Exception as exc:
                self.log(f"stopping {name}: {type(exc).__name__}: {exc}")
        self.hub = None
        self._policies = False

    # ---- what the host serves --------------------------------------------------------

    @property
    def dispatch_running(self) -> bool:
        return self._dispatch_lock is not None

    def summary(self) -> list[str]:
        """What runs, in a few lines for a terminal."""
        hub = self.hub
        lines = [f"hub: {'serving ' + str(len(hub.doors)) + ' door(s)' if hub else 'off'}"
                 + (f", http {hub.http_url}" if hub is not None and hub.http_url else "")]
        if self.dispatch_running:
            lines.append(f"dispatch: {self.dispatch_url}")
        elif self.dispatch_elsewhere is not None:
            lines.append(f"dispatch: runs in pid {self.dispatch_elsewhere.get('pid', '?')}")
        else:
            lines.append("dispatch: off")
        lines.append("runtime: docker" if self.runtime is not None else
                     f"runtime: off ({self.runtime_problem})" if self.runtime_problem else "runtime: off")
        return lines

    async def open_door(self, name: str) -> None:
        """Open the agent's MCP socket now (before its container starts)."""
        if self.hub is not None:
            await self.hub.open_door(name)

    def run_policies(self, runtime: Any, pool: Any = None) -> None:
        """Attach a runtime connected after start (the console's): launch policies,
        announcements (through ``pool``, the caller's shared terminals) and supervision."""
        if self.runtime is None:
            self.runtime = runtime
        if pool is not None:
            self.pool = pool
        if self.launcher is not None:
            self.launcher.runtime = self.runtime
        if self._policies:
            return
        self._start_policies()
        if self._policies and self.launcher is not None and self.dispatch_running:
            task = asyncio.create_task(self._start_always_later(), name="host-launch-always")
            self._cleanup.append(("launch always", lambda: _cancel(task)))

    async def _start_always_later(self) -> None:
        for name in await self.launcher.start_always():
            self.log(f"started {name} (launch always)")

    # ---- parts -------------------------------------------------------------------

    async def _sync_roster(self) -> None:
        from crowdtui.roster import load_roster, sync_roster

        roster = await asyncio.to_thread(load_roster, self.workspace)
        for problem in roster.errors:
            self.log(f"roster: {problem}")
        diff = await sync_roster(self.store, roster)
        if diff:
            self.log(f"roster: {len(roster)} agents (added {len(diff.added)}, changed {len(diff.changed)}, "
                     f"removed {len(diff.removed)})")
        self._roster = roster

    def _start_roster_follower(self) -> None:
        from crowdtui.roster import follow_roster

        def on_update(update) -> None:
            d = update.diff
            if d:
                self.log(f"roster: added {list(d.added)}, changed {list(d.changed)}, removed {list(d.removed)}")

        async def follow() -> None:
            try:
                await follow_roster(self.workspace, self.store, initial=self._roster, on_update=on_update)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the host goes on with the agents it knows
                self.log(f"stopped following the roster ({type(exc).__name__}: {exc}); "
                         "restart the host to pick up changes in agents/")

        task = asyncio.create_task(follow(), name="host-follow-roster")
        self._cleanup.append(("roster", lambda: _cancel(task)))

    async def _connect_runtime(self) -> None:
        from crowdtui.runtime.containers import Runtime

        try:
            self.runtime = await asyncio.to_thread(Runtime, self.workspace)
        except CrowdError as exc:  # EngineUnavailable and the like: serve what the registry knows
            self.runtime_problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.log(f"no Docker engine ({self.runtime_problem}): agents are neither started nor "
                     "stopped by this host; start Docker and restart the host")
            return
        runtime = self.runtime
        self._cleanup.append(("runtime", runtime.close))

    async def _follow_states(self) -> None:
        from crowdtui.runtime.state import StateFollower, start_following

        try:  # bring states up to date first, so doors open for what really runs
            await StateFollower(self.runtime, self.store).reconcile()
        except Exception as exc:
            self.log(f"agent states not refreshed from the engine ({exc})")
        _follower, stop_states = start_following(self.runtime, self.store)
        self._cleanup.append(("states", stop_states))

    def _make_dispatch(self):
        from crowdtui.dispatch.launcher import Launcher
        from crowdtui.dispatch.service import Dispatch, DispatchConfig

        self.launcher = Launcher(self.workspace, self.store, self.runtime,
                                 log=lambda line: self.log(f"launch: {line}"),
                                 on_task=not self.options.hub)  # the hub's launch policy does on_task
        config = self.options.dispatch_config or DispatchConfig()
        if not config.operator_chats:  # crowd.toml [approvals] operator_chats: where the operator answers
            chats = self.workspace.setting("approvals", "operator_chats", []) or []
            config = dataclasses.replace(config, operator_chats=tuple(chats) if isinstance(chats, list) else chats)
        return Dispatch(self.store, config=config,
                      stop_agent=self.launcher.stop, delivered=self.launcher.delivered,
                      log=lambda line: self.log(f"dispatch: {line}"))

    async def _start_hub(self) -> None:
        from crowdtui.dispatch.mcp_tools import add_dispatch_tools
        from crowdtui.hub.hub import Hub
        from crowdtui.hub.hub_lock import HubAlreadyRunning

        hub = Hub(self.workspace, self.store, http_port=self.options.hub_http_port,
                  http_host=self.options.hub_http_host)
        try:
            await hub.start()
        except HubAlreadyRunning as exc:
            raise HostAlreadyRunning(str(exc), pid=hub.lock.holder().get("pid")) from None
        self.hub = hub
        self._cleanup.append(("hub", hub.stop))
        add_dispatch_tools(hub.server, self.dispatch)
        await hub.open_running_doors()
        hub.follow_registry()
        from crowdtui.host_relay import open_relay

        await open_relay(self.workspace, hub, self.log)  # agents on remote engines (crowdtui/host_relay.py)
        self.log(f"hub started{' (' + hub.http_url + ')' if hub.http_url else ''}")

    def _take_dispatch_lock(self, *, required: bool) -> None:
        from crowdtui.dispatch.serve_lock import ServeAlreadyRunning, ServeLock
        from crowdtui.process_lock import since

        lock = ServeLock(self.workspace.crowd_dir / "run" / "serve.lock")
        try:
            lock.acquire()
        except ServeAlreadyRunning:
            holder = lock.holder()
            if required:
                pid = holder.get("pid", "?")
                raise HostAlreadyRunning(
                    f"a host already runs for this workspace (pid {pid}, since {since(holder)}, "
                    f"{holder.get('url', 'starting')}; `crowdtui serve`, `crowdtui hub` or a console); "
                    f"use it, or stop it first (kill {pid})", pid=pid) from None
            self.dispatch_elsewhere = holder
            self.log(f"dispatch: runs in another process (pid {self.dispatch_elsewhere.get('pid', '?')}); "
                     "this host serves its tools")
            return
        self._dispatch_lock = lock

        def release() -> None:
            lock.release()
            self._dispatch_lock = None

        self._cleanup.append(("dispatch lock", release))

    async def _start_dispatch(self) -> None:
        from crowdtui.dispatch.api import build_app
        from crowdtui.dispatch.http_server import LocalServer
        from crowdtui.dispatch.serve import info_path, write_private

        dispatch = self.dispatch
        await dispatch.start()
        self._cleanup.append(("dispatch", dispatch.stop))
        register_key = secrets.token_urlsafe(24)
        started = time.time()
        hub = self.hub

        def status() -> dict:
            return {"workspace": str(self.workspace.root), "uptime": round(time.time() - started, 1),
                    "hub": bool(hub), "hub_http": getattr(hub, "http_url", None),
                    "runtime": self.runtime is not None}

        port = self.options.dispatch_port
        if port is None:
            port = int(self.workspace.dispatch_port() or 0)
        server = await LocalServer(build_app(dispatch, register_key=register_key, status=status),
                                   host=self.options.dispatch_host, port=port).start()
        self._cleanup.append(("http", server.stop))
        self.dispatch_url = server.url
        info = {"pid": os.getpid(), "url": server.url, "register_key": register_key, "started": started,
                "hub_http": getattr(hub, "http_url", None)}
        path = info_path(self.workspace)
        write_private(path, info)
        self._cleanup.append(("info", lambda: _remove(path)))
        self._dispatch_lock.note(pid=os.getpid(), started=started, url=server.url)

    def _start_policies(self) -> None:
        """Announcements, launch/shutdown policies and the supervisor: once the hub and a
        runtime are both there."""
        if self.hub is None or self.runtime is None or self._policies:
            return
        from crowdtui.host_relay import hookup

        self.runtime.door = hookup(self.workspace, self.hub)  # remote agents' doors through their relay
        self.hub.run_policies(self.runtime, self.pool)
        self._policies = True
        if self.launcher is not None:
            self.launcher.runtime = self.runtime


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# ---- in the foreground, until a signal ----------------------------------------------


async def run_foreground(host: Host, *, ready: Callable[[Host], None] | None = None,
                         stop: asyncio.Event | None = None) -> int:
    """Start ``host``, call ``ready(host)``, run until SIGTERM/SIGINT (or ``stop`` is set),
    then stop it. What ``crowdtui serve`` and ``crowdtui hub`` run. Returns the exit status."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()  # refusals (another host runs) raise before anything started
        try:
            if ready is not None:
                ready(host)
            await stop.wait()
            host.log("stopping")
        finally:
            await host.stop()
            host.log("stopped")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


# ---- is one running; start one in the background ---------------------------------------


def host_running(workspace) -> bool:
    """True while some process runs this workspace's hub (``crowdtui hub``, ``serve``, a console)."""
    from crowdtui.process_lock import lock_held

    return lock_held(workspace.crowd_dir / "run" / "hub.lock")


def background_log(workspace) -> Path:
    return workspace.crowd_dir / "run" / "host.log"


def start_background(workspace, *, wait: float = 30.0) -> tuple[int, Path]:
    """Start ``crowdtui hub`` for ``workspace`` as a detached process (its output in
    ``.crowd/run/host.log``) and wait until it holds the hub lock. Returns (pid, log)."""
    import subprocess

    log_file = background_log(workspace)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "hub"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if host_running(workspace):
            return proc.pid, log_file
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if proc.poll() is None and not host_running(workspace):
        proc.terminate()
    raise CrowdError(f"the host did not start (see {log_file}); run `crowdtui hub` in a terminal to see why")
