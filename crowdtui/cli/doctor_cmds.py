"""``crowdtui doctor``: is this machine and workspace ready, and if not, what to do.

Checks, each answered ``ok``, ``warn`` (works, with less), ``fail`` (something a person must
fix) or ``skip`` (could not be checked because an earlier check failed), with a fix::

    engine       a Docker engine answers at DOCKER_HOST (its version and API)
    image        every image the roster's agents run is built (the agent image, runners')
    hub          a host (hub) runs for the workspace; running agents have their MCP door
    workspace    the workspace is found, its roster loads
    permissions  .crowd/ and the store are writable; root (home filesystems with a size
                 limit, a root-owned IPC folder); the secrets key file is 0600
    disk         free space where the workspace, the image cache and Docker's data live

The exit status is 1 when a check failed, else 0. ``--json`` prints
``{"ok": bool, "checks": [{"area", "status", "detail", "fix"}]}`` (docs/cli-json.md).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from crowdtui.cli.common import emit, inert

DISK_FAIL = 1 << 30  # under 1 GiB free: images, homes and the store soon stop
DISK_WARN = 5 << 30  # under 5 GiB: an image build (~0.7 GiB with a runner) may not fit


@dataclass
class Check:
    area: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check engine, image, hub, permissions and disk; say how to fix each",
                       description="Check that crowdtui can run agents here: the Docker engine, the agent "
                       "images, the workspace's hub, permissions and free disk. Exit status 1 when "
                       "something must be fixed.")
    p.set_defaults(func=cmd_doctor)


async def cmd_doctor(args) -> int:
    import asyncio

    checks: list[Check] = []
    ws = _workspace(args, checks)
    roster = _roster(ws, checks) if ws else None
    client = await asyncio.to_thread(_engine, checks)
    try:
        if client is None:
            checks.append(Check("image", "skip", "not checked: no engine", "fix the engine first"))
        else:
            await asyncio.to_thread(_images, client, ws, roster, checks)
        await _hub(ws, client, checks)
        await _permissions(ws, checks)
        _disk(ws, client, checks)
    finally:
        if client is not None:
            client.close()
    ok = not any(c.status == "fail" for c in checks)
    width = max(len(c.area) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper() if c.status != 'ok' else 'ok':<4}  {c.area:<{width}}  {inert(c.detail)}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<4}  {'':<{width}}  fix: {inert(c.fix)}")
    lines.append("all good" if ok and all(c.status == "ok" for c in checks)
                 else "works, with the warnings above" if ok else "something must be fixed (FAIL above)")
    emit(args, {"ok": ok, "checks": [asdict(c) for c in checks]}, *lines)
    return 0 if ok else 1


def _workspace(args, checks: list[Check]):
    from crowdtui.errors import CrowdError
    from crowdtui.workspace import find_workspace

    try:
        ws = find_workspace(getattr(args, "workspace", None))
    except CrowdError as exc:
        checks.append(Check("workspace", "warn", f"no workspace: {exc}",
                            "`crowdtui init DIR` makes one; pass --workspace DIR or cd into it"))
        return None
    checks.append(Check("workspace", "ok", f"{ws.root}"))
    return ws


def _roster(ws, checks: list[Check]):
    from crowdtui.roster import load_roster

    roster = load_roster(ws)
    if roster.errors:
        checks.append(Check("workspace", "warn", f"{len(roster.errors)} problem(s) in agents/: {roster.errors[0]}",
                            "fix the AGENT.md named (the other agents still load)"))
    return roster


def _engine(checks: list[Check]):
    from crowdtui.errors import CrowdError
    from crowdtui.runtime.engine import connect

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = connect(timeout=10)
        version = client.version()
    except CrowdError as exc:
        checks.append(Check("engine", "fail", str(exc), _engine_fix(where)))
        return None
    checks.append(Check("engine", "ok", f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}) "
                        f"at {where}"))
    return client


def _engine_fix(where: str) -> str:
    if where.startswith("unix://"):
        path = where[len("unix://"):]
        if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            return f"you may not use {path}: run as root or join the socket's group (`sudo usermod -aG docker $USER`)"
        if os.environ.get("DOCKER_HOST"):
            return f"nothing listens at {path}: unset DOCKER_HOST or point it at a running engine"
    elif os.environ.get("DOCKER_HOST"):
        return f"DOCKER_HOST={where} does not answer: check it, or unset it for the local engine"
    return ("start Docker: `make setup` (as root it installs docker.io and starts dockerd), "
            "or `sudo systemctl start docker`")


def _images(client, ws, roster, checks: list[Check]) -> None:
    from crowdtui.runners import runner_named
    from crowdtui.runtime.container_spec import image_for
    from crowdtui.runtime.image import image_exists, image_tag

    wanted: dict[str, tuple[list[str], str]] = {}  # tag -> (agents, how to make it)
    for agent in (roster or []) if ws is not None else []:
        tag = image_for(ws, agent)
        if agent.image:
            fix = (f"named by image: in agents/{agent.rel_path}/AGENT.md: build or load {tag}, "
                   "or remove that line")
        elif runner_named(agent.runner).packages:
            fix = f"crowdtui image build --runner {agent.runner}"
        elif tag != image_tag():
            fix = (f"set by [runtime] image in crowd.toml: build or load {tag}, or empty that setting "
                   "(then `crowdtui image build`)")
        else:
            fix = "crowdtui image build"
        wanted.setdefault(tag, ([], fix))[0].append(agent.name)
    if not wanted:
        wanted[image_tag()] = ([], "crowdtui image build")
    for tag, (agents, fix) in sorted(wanted.items()):
        who = f" (for {', '.join(agents)})" if agents else ""
        if image_exists(client, tag):
            checks.append(Check("image", "ok", f"{tag}{who}"))
        else:
            checks.append(Check("image", "fail", f"{tag} is not built{who}", fix))


async def _hub(ws, client, checks: list[Check]) -> None:
    from crowdtui.host import host_running

    if ws is None:
        checks.append(Check("hub", "skip", "not checked: no workspace", "pass --workspace DIR"))
        return
    if not host_running(ws):
        checks.append(Check("hub", "warn", "no host runs for this workspace: agents started now have no MCP door",
                            "`crowdtui hub` or `crowdtui serve` (foreground), the console, or `crowdtui up --host NAME`"))
        return
    from crowdtui.process_lock import ProcessLock

    pid = ProcessLock(ws.crowd_dir / "run" / "hub.lock").holder().get("pid", "?")
    running: list[str] = []
    if client is not None:
        from crowdtui.runtime.containers import Runtime

        runtime = Runtime(ws, client)
        running = [i.name for i in await runtime.list() if i.running]
    closed = [n for n in running if not (ws.ipc_dir(n) / "mcp.sock").is_socket()]
    if closed:
        checks.append(Check("hub", "warn", f"the host (pid {pid}) runs, but {', '.join(closed)} "
                            "run(s) with no MCP door", f"`crowdtui restart {closed[0]}` once the host runs"))
    else:
        checks.append(Check("hub", "ok", f"the host runs (pid {pid}); {len(running)} running agent(s), "
                            "each with its MCP door"))


async def _permissions(ws, checks: list[Check]) -> None:
    if ws is not None:
        if not os.access(ws.crowd_dir, os.W_OK | os.X_OK):
            checks.append(Check("permissions", "fail", f"{ws.crowd_dir} is not writable by uid {os.geteuid()}",
                                f"run as its owner, or `chown -R {os.geteuid()} {ws.crowd_dir}`"))
        else:
            try:
                store = await ws.open_store()
                await store.close()
                checks.append(Check("permissions", "ok", f"{ws.db_path} opens for writing"))
            except Exception as exc:  # noqa: BLE001 - whatever it is, the person must see it
                checks.append(Check("permissions", "fail", f"the store {ws.db_path} does not open: {exc}",
                                    "check the file's owner and mode, and that its disk is not full or read-only"))
        _key_file(ws, checks)
    if os.geteuid() != 0:
        checks.append(Check("permissions", "warn", "not root: agents' homes are plain folders (no size limit) "
                            "and their IPC folders are not root-owned", "run crowdtui as root for both"))
    else:
        checks.append(Check("permissions", "ok", "root: homes get their own size-limited filesystems"))


def _key_file(ws, checks: list[Check]) -> None:
    from crowdtui.secrets import KEY_ENV, key_file_path

    if os.environ.get(KEY_ENV):
        return
    path = key_file_path(ws)
    if not path.exists():
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        checks.append(Check("permissions", "fail", f"the secrets key {path} has mode {mode:o}: others may read it",
                            f"chmod 600 {path}"))
    else:
        checks.append(Check("permissions", "ok", f"the secrets key {path} is 0600"))


def _disk(ws, client, checks: list[Check]) -> None:
    from crowdtui.runtime.image import cache_dir

    places = {}
    if ws is not None:
        places["workspace"] = ws.root
    places["image cache"] = cache_dir()
    if client is not None:
        try:
            places["Docker's data"] = Path(client.info().get("DockerRootDir") or "")
        except Exception:  # noqa: BLE001 - an engine gone since: the engine check says so
            pass
    seen: set[int] = set()
    for what, path in places.items():
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not str(path):
            continue
        dev = existing.stat().st_dev
        if dev in seen:
            continue
        seen.add(dev)
        free = shutil.disk_usage(existing).free
        text = f"{free / (1 << 30):.1f} GiB free for the {what} ({path})"
        if free < DISK_FAIL:
            checks.append(Check("disk", "fail", text, f"free space on the filesystem of {existing} (at least 1 GiB)"))
        elif free < DISK_WARN:
            checks.append(Check("disk", "warn", text, f"free space on the filesystem of {existing}: an image "
                                "build needs up to 1 GiB"))
        else:
            checks.append(Check("disk", "ok", text))
