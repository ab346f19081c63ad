"""Per-agent disk limits: each agent's home is a filesystem of its own.

An agent's home (``.crowd/homes/<agent>``, ``/home/agent`` inside) is a bind mount of a
host folder, so without a limit an agent fills the host's disk. Here the home is an ext4
filesystem in a sparse image file (``.crowd/disks/<agent>.ext4``) loop-mounted on that
folder, sized by the definition's ``resources.disk`` (default 1g). Why a loop image:

- it needs nothing from the host's filesystem (no XFS project quotas, no quota tools),
  works the same on every Linux with loop devices, and survives restarts (the image is a
  file; it is mounted again at the next start);
- the host still reaches the home as a plain folder (the hub seeds ``.mcp.json`` there
  through :class:`crowdtui.agent_folder.AgentFolder`) — a Docker volume would not allow it;
- inside, ``df`` shows the agent's own limit, and ``/proc/self/mountinfo`` shows the loop
  filesystem's root instead of the host path of the home.

The IPC folder needs no image: as root it is crowdtui's (0755), so the agent can only
connect to the sockets crowdtui puts there and cannot write a byte into it.

Mounting needs root. Without root (agents then run as our own uid) homes are plain
folders and a warning says so; ``resources: {disk: none}`` asks for that on purpose.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from crowdtui.agent_folder import AGENT_GID, AGENT_UID
from crowdtui.errors import CrowdError

log = logging.getLogger(__name__)

UNLIMITED = "none"


class DiskFailed(CrowdError):
    """The agent's home filesystem could not be made or mounted."""


def image_path(workspace, agent: str) -> Path:
    return workspace.crowd_dir / "disks" / f"{agent}.ext4"


def _size(text: str) -> int:
    units = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower()
    digits = text.rstrip("bkmg")
    return int(float(digits) * units[text[len(digits):][:1]])


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise DiskFailed(f"{what}: {cmd[0]} is not installed (on Debian: apt-get install e2fsprogs mount)") from None
    if proc.returncode != 0:
        detail = " ".join((proc.stderr or proc.stdout).split())[:300]
        raise DiskFailed(f"{what}: {' '.join(cmd[:2])} failed: {detail}")


def _mounted_from(home: Path) -> str | None:
    """The device or image mounted on ``home`` (from /proc/self/mountinfo), or None."""
    target = str(home)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            found = None
            for line in fh:
                fields = line.split()
                if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == target:
                    sep = fields.index("-")
                    found = fields[sep + 2] if len(fields) > sep + 2 else "?"
            return found
    except OSError:
        return None


def ensure_home_disk(workspace, agent: str, disk: str) -> str:
    """Make sure the agent's home is its own filesystem of ``disk`` bytes; returns what applies
    ("limited to 1024m", "unlimited: ..."). Idempotent; a larger size grows the filesystem."""
    home = workspace.home_dir(agent)
    if (disk or UNLIMITED) == UNLIMITED:
        return "unlimited: the definition says disk: none"
    if os.geteuid() != 0:
        return "unlimited: crowdtui is not root, so it cannot mount the home's own filesystem"
    size = _size(disk)
    image = image_path(workspace, agent)
    image.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(image.parent, 0o700)
    fresh = not image.exists()
    grown = False
    if fresh:
        with open(image, "wb") as fh:
            fh.truncate(size)
        os.chmod(image, 0o600)
        _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-J", "size=4",
              "-E", f"root_owner={AGENT_UID}:{AGENT_GID},lazy_itable_init=1",
              "-L", f"crowd-{agent}"[:16], str(image)], f"agent {agent}: making its home filesystem")
    elif image.stat().st_size < size:
        with open(image, "r+b") as fh:
            fh.truncate(size)
        grown = True
    source = _mounted_from(home)
    if source is None:
        home.parent.mkdir(parents=True, exist_ok=True)
        if home.is_symlink():
            raise DiskFailed(f"agent {agent}: {home} is a link; replace it with a folder")
        home.mkdir(exist_ok=True)
        leftovers = os.listdir(home)
        if leftovers:
            _adopt(workspace, agent, home, image, fresh)
        _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(home)], f"agent {agent}: mounting its home")
        if fresh:
            try:
                os.rmdir(home / "lost+found")
            except OSError:
                pass
    if grown:
        device = _mounted_from(home)
        if device and device.startswith("/dev/loop"):
            _grow(device, agent)
    return f"limited to {size // 1024**2}m"


def _grow(device: str, agent: str) -> None:
    """Let the loop device and the filesystem take a grown image (no-op when already full size)."""
    try:
        subprocess.run(["losetup", "-c", device], capture_output=True, timeout=30)
        subprocess.run(["resize2fs", device], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:  # pragma: no cover - tools missing
        log.warning("agent %s: could not grow its home filesystem: %s", agent, exc)


def _adopt(workspace, agent: str, home: Path, image: Path, fresh: bool) -> None:
    """A home that already holds files (made before limits, or seeded before the first mount):
    its files move into the filesystem, so mounting hides nothing."""
    staging = workspace.crowd_dir / "disks" / f".{agent}.mnt"
    staging.mkdir(mode=0o700, exist_ok=True)
    _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(staging)], f"agent {agent}: opening its home filesystem")
    try:
        if fresh:
            try:
                os.rmdir(staging / "lost+found")
            except OSError:
                pass
        for entry in os.listdir(home):
            target = staging / entry
            if os.path.lexists(target):  # the filesystem's copy is the agent's newer one
                continue
            try:
                os.rename(home / entry, target)
            except OSError:  # across filesystems: copy, keeping links as links
                src = home / entry
                if src.is_dir() and not src.is_symlink():
                    shutil.copytree(src, target, symlinks=True)
                    shutil.rmtree(src)
                else:
                    shutil.copy2(src, target, follow_symlinks=False)
                    src.unlink()
        for leftover in os.listdir(home):  # copies already in the filesystem
            path = home / leftover
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    finally:
        _run(["umount", str(staging)], f"agent {agent}: closing its home filesystem")
        try:
            staging.rmdir()
        except OSError:
            pass


def release_home_disk(workspace, agent: str) -> bool:
    """Unmount the agent's home filesystem (the image stays); False when it was not mounted."""
    home = workspace.home_dir(agent)
    if _mounted_from(home) is None:
        return False
    proc = subprocess.run(["umount", str(home)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        subprocess.run(["umount", "-l", str(home)], capture_output=True, timeout=60)
    return True


def archive_home(workspace, agent: str) -> Path:
    """Move a retired agent's state out of the way: its home (the filesystem image, else the
    plain folder) and its logs go to ``.crowd/archive/<agent>-<UTC time>/``, its IPC folder
    is removed. Returns the archive folder. The container must be gone first."""
    import time

    release_home_disk(workspace, agent)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = workspace.crowd_dir / "archive"
    dest, n = base / f"{agent}-{stamp}", 1
    while dest.exists():
        n += 1
        dest = base / f"{agent}-{stamp}-{n}"
    dest.mkdir(parents=True)
    image = image_path(workspace, agent)
    if image.exists():
        image.rename(dest / "home.ext4")
    home = workspace.home_dir(agent)
    if home.exists() and _mounted_from(home) is None:
        home.rename(dest / "home")
    logs = workspace.log_dir(agent)
    if logs.exists():
        logs.rename(dest / "logs")
    shutil.rmtree(workspace.ipc_dir(agent), ignore_errors=True)
    return dest


def release_all(workspace) -> list[str]:
    """Unmount every agent home of the workspace (images stay); the names released."""
    homes = workspace.crowd_dir / "homes"
    released = []
    try:
        names = sorted(os.listdir(homes))
    except OSError:
        return released
    for name in names:
        if release_home_disk(workspace, name):
            released.append(name)
    return released


def unmount_below(folder: Path) -> list[str]:
    """Unmount every mount point below ``folder`` (deepest first); the paths unmounted."""
    prefix = str(Path(folder).resolve()).rstrip("/") + "/"
    points = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 4:
                    point = fields[4].encode().decode("unicode_escape")
                    if point.startswith(prefix):
                        points.append(point)
    except OSError:
        return []
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)
    return points


def usage(workspace, agent: str) -> tuple[int, int] | None:
    """(used, total) bytes of the agent's home filesystem, or None when it has none."""
    home = workspace.home_dir(agent)
    if _mounted_from(home) is None:
        return None
    st = os.statvfs(home)
    return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize
