"""``crowdtui serve``: the hub and the engine for one workspace, without a screen.

Start-up: take the workspace's serve lock, open the store, register the roster, start
the hub (MCP doors follow the registry) with the engine's tools, start the engine and
its HTTP side on 127.0.0.1, write ``.crowd/run/serve.json`` (url, pid and the register
key channels need; mode 0600). SIGTERM or SIGINT stops everything in reverse order.
Logs are plain lines on stderr. Never imports textual.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from crowdtui.engine.lock import ServeLock
from crowdtui.engine.service import EngineConfig

INFO_NAME = "serve.json"


def info_path(workspace) -> Path:
    return workspace.crowd_dir / "run" / INFO_NAME


def read_info(workspace) -> dict | None:
    """What the running serve of ``workspace`` wrote about itself (url, pid, register_key),
    or None when none runs (a file left by a killed serve does not count: its lock is free)."""
    if not serve_running(workspace):
        return None
    try:
        data = json.loads(info_path(workspace).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def serve_running(workspace) -> bool:
    """True while some process holds the workspace's serve lock."""
    import fcntl

    try:
        fd = os.open(workspace.crowd_dir / "run" / "serve.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def log_line(line: str) -> None:
    import sys

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} serve: {line}", file=sys.stderr, flush=True)


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 0
    hub: bool = True
    runtime: bool = True
    engine: EngineConfig | None = None


def _write_private(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.write("\n")
    os.replace(tmp, path)


async def run_serve(workspace, options: ServeOptions | None = None, *, log=log_line,
                    stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Returns the exit status."""

    from crowdtui.engine.api import build_app
    from crowdtui.engine.http_server import LocalServer
    from crowdtui.engine.service import Engine

    opts = options or ServeOptions()
    lock = ServeLock(workspace.crowd_dir / "run" / "serve.lock")
    lock.acquire()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    cleanup: list = []
    try:
        store = await workspace.open_store()
        cleanup.append(("store", store.close))
        await _sync_roster(workspace, store, log)

        runtime = launcher = None
        if opts.runtime:
            runtime, launcher = await _start_runtime(workspace, store, log, cleanup)

        engine = Engine(store, config=opts.engine or EngineConfig(),
                        stop_agent=launcher.stop if launcher else None,
                        delivered=launcher.delivered if launcher else None,
                        log=lambda line: log(f"engine: {line}"))

        hub = None
        if opts.hub:
            hub = await _start_hub(workspace, store, engine, log, cleanup)
            if runtime is not None:
                # announcements in agents' terminals, launch on_task and shutdown policies
                hub.run_policies(runtime)
                launcher.on_task = False
        follow = asyncio.create_task(_follow_roster(workspace, store, log), name="serve-follow-roster")

        async def stop_following() -> None:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)

        cleanup.append(("roster", stop_following))

        await engine.start()
        cleanup.append(("engine", engine.stop))
        register_key = secrets.token_urlsafe(24)
        started = time.time()

        def status() -> dict:
            return {"workspace": str(workspace.root), "uptime": round(time.time() - started, 1),
                    "hub": bool(hub), "hub_http": getattr(hub, "http_url", None),
                    "runtime": runtime is not None}

        server = await LocalServer(build_app(engine, register_key=register_key, status=status),
                                   host=opts.host, port=opts.port).start()
        cleanup.append(("http", server.stop))
        info = {"pid": os.getpid(), "url": server.url, "register_key": register_key, "started": started,
                "hub_http": getattr(hub, "http_url", None)}
        _write_private(info_path(workspace), info)
        cleanup.append(("info", lambda: _remove(info_path(workspace))))
        lock.note(pid=os.getpid(), started=started, url=server.url)
        log(f"listening on {server.url} (pid {os.getpid()}, workspace {workspace.root}, "
            f"hub {'on' if hub else 'off'}, runtime {'on' if runtime else 'off'})")
        if launcher:
            for name in await launcher.start_always():
                log(f"started {name} (launch always)")
        await stop.wait()
        log("stopping")
        return 0
    finally:
        for name, fn in reversed(cleanup):
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, 15)
            except Exception as exc:
                log(f"stopping {name}: {type(exc).__name__}: {exc}")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        lock.release()
        log("stopped")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


async def _sync_roster(workspace, store, log) -> None:
    from crowdtui.roster import load_roster, sync_roster

    roster = await asyncio.to_thread(load_roster, workspace)
    for p in roster.errors:
        log(f"roster: {p}")
    diff = await sync_roster(store, roster)
    if diff:
        log(f"roster: {len(roster)} agents (added {len(diff.added)}, changed {len(diff.changed)}, "
            f"removed {len(diff.removed)})")


async def _follow_roster(workspace, store, log) -> None:
    """Register agents added to agents/ (and drop removed ones) while serve runs."""
    from crowdtui.roster import record_roster_changes, watch_roster

    try:
        async for update in watch_roster(workspace):
            if update.diff:
                await record_roster_changes(store, update.roster, update.diff)
                d = update.diff
                log(f"roster: added {list(d.added)}, changed {list(d.changed)}, removed {list(d.removed)}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # serve goes on with the agents it knows
        log(f"stopped following the roster ({type(exc).__name__}: {exc})")


async def _start_runtime(workspace, store, log, cleanup):
    from crowdtui.engine.launch import Launcher
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.state import start_following

    runtime = await asyncio.to_thread(Runtime, workspace)
    _follower, stop_states = start_following(runtime, store)

    async def stop_follower() -> None:
        await stop_states()
        runtime.close()

    cleanup.append(("runtime", stop_follower))
    return runtime, Launcher(workspace, store, runtime, log=lambda line: log(f"launch: {line}"))


async def _start_hub(workspace, store, engine, log, cleanup):
    from crowdtui.engine.mcp_tools import add_engine_tools
    from crowdtui.hub.hub import Hub

    hub = Hub(workspace, store)
    await hub.start()
    cleanup.append(("hub", hub.stop))
    add_engine_tools(hub.server, engine)
    hub.follow_registry()
    log(f"hub started{' (' + hub.http_url + ')' if hub.http_url else ''}")
    return hub
