"""Every host-side file operation in a folder an agent can write (its home, its IPC folder).

crowdtui often runs as root, and an agent owns these folders: it can put symbolic links,
FIFOs, sockets or directories wherever crowdtui expects a file, and swap them at any
moment (from inside its container, while crowdtui works). So nothing here ever follows a
link the agent could have placed:

- Paths are walked from the folder's root (the mount point: the agent cannot replace it,
  and its parent is ours) one component at a time, ``openat(O_DIRECTORY | O_NOFOLLOW)``.
- Files are read through ``O_NOFOLLOW | O_NONBLOCK`` descriptors and checked on the
  descriptor (a regular file, one link, at most ``max_bytes``).
- Files are written to a temporary file made with ``O_CREAT | O_EXCL | O_NOFOLLOW`` in the
  same directory, given their mode and owner on the descriptor (``fchmod``/``fchown``),
  synced and renamed into place: a link in the way is replaced, never followed; a
  directory in the way is moved aside.
- Sockets are bound in a private staging folder beside the agent folders (ours, 0700,
  never mounted into a container), given their mode and owner there, and renamed into the
  agent's folder: no path-based call ever touches them inside the agent's folder.

What an agent left in crowdtui's way is not obeyed: it is replaced (or moved aside) and
reported as a :class:`Finding`; callers record each as an ``agent.unsafe_file`` event
(see :func:`finding_event`) so the operator sees the attempt.

    folder = AgentFolder(workspace.home_dir("lead"), agent="lead")
    folder.write(".mcp.json", data)
    for f in folder.findings: record(f)
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from crowdtui.errors import CrowdError

AGENT_UID = AGENT_GID = 1000  # the user every agent container runs as (when crowdtui is root)
MAX_READ = 1024 * 1024  # the largest file crowdtui reads from an agent's folder
STAGING = ".staging"  # beside the agent folders; agent names never start with a dot

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeEntry(CrowdError):
    """Something an agent placed where crowdtui needs a plain file or folder."""

    def __init__(self, agent: str, path: str, found: str, what: str = ""):
        self.agent, self.path, self.found = agent, path, found
        who = f"agent {agent}: " if agent else ""
        super().__init__(f"{who}{path} in its folder is {found}, not {what or 'a plain file'}; "
                         "crowdtui does not follow or read it")


@dataclass(frozen=True)
class Finding:
    """What crowdtui found in its way and what it did about it."""

    agent: str
    folder: str  # which of the agent's folders: "home", "ipc"
    path: str    # relative to that folder, e.g. ".mcp.json"
    found: str   # "a symbolic link", "a directory", "a FIFO", "2000000 bytes" ...
    action: str  # "replaced", "moved aside to NAME", "removed", "ignored", "refused"


def finding_event(finding: Finding) -> tuple[str, str, dict]:
    """(kind, subject, detail) of the event that records ``finding``."""
    return "agent.unsafe_file", finding.agent, {
        "folder": finding.folder, "path": finding.path, "found": finding.found, "action": finding.action,
    }


def home_folder(workspace, agent: str) -> "AgentFolder":
    """The agent's home (``/home/agent``): the agent's own, read-write."""
    return AgentFolder(workspace.home_dir(agent), agent=agent, label="home")


def ipc_folder(workspace_or_path, agent: str) -> "AgentFolder":
    """The agent's IPC folder (``/run/crowd``): crowdtui's (0755 as root), the agent may only
    connect to the sockets in it, which crowdtui binds owned by the agent user."""
    root = workspace_or_path if isinstance(workspace_or_path, Path) else workspace_or_path.ipc_dir(agent)
    return AgentFolder(root, agent=agent, label="ipc", own_root=False)


def agent_owner() -> tuple[int, int] | None:
    """Owner of what crowdtui creates for agents: the agent user as root, else ours (None)."""
    return (AGENT_UID, AGENT_GID) if os.geteuid() == 0 else None


def describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISREG(mode):
        return "a file"
    return "something else"


def _parts(rel: str | os.PathLike) -> list[str]:
    text = os.fspath(rel)
    if text in ("", "."):
        return []
    if text.startswith("/") or "\x00" in text:
        raise ValueError(f"{text!r} must be a relative path inside the agent's folder")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"{text!r} must not leave the agent's folder")
    return parts


class AgentFolder:
    """A folder an agent can write, handled without ever following what the agent placed.

    ``root`` is the folder itself (``.crowd/homes/<agent>`` or ``.crowd/ipc/<agent>``):
    trusted, because its parent is crowdtui's. ``label`` names it in findings ("home",
    "ipc"). ``owner`` is who gets what crowdtui
    creates (default :func:`agent_owner`). ``findings`` collects what was in the way.
    """

    def __init__(self, root: Path, *, agent: str = "", label: str = "", owner: tuple[int, int] | None | str = "agent",
                 staging: Path | None = None, own_root: bool = True):
        self.root = Path(root)
        self.own_root = own_root  # False: the folder itself stays crowdtui's (the IPC folder)
        self.agent = agent or self.root.name
        self.label = label or self.root.parent.name  # "homes" / "ipc" from the workspace layout
        self.owner = agent_owner() if owner == "agent" else owner
        self.staging = Path(staging) if staging is not None else self.root.parent / STAGING
        self.findings: list[Finding] = []

    # ---- walking ---------------------------------------------------------------------

    def _note(self, path: str, found: str, action: str) -> None:
        """Note what was in the way; a later act on the same thing (read: ignored, then
        write: replaced) supersedes the earlier note, so one attempt is one finding."""
        self.findings = [f for f in self.findings if (f.path, f.found) != (path, found)]
        self.findings.append(Finding(self.agent, self.label, path, found, action))

    def _own(self, fd: int) -> None:
        if self.owner is not None:
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid) != self.owner:
                os.fchown(fd, *self.owner)

    def _open_root(self, create: bool) -> int:
        if create and not os.path.lexists(self.root):
            self.root.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(self.root, 0o755)
            except FileExistsError:
                pass
            fd = os.open(self.root, _O_DIR)
            if self.own_root:
                self._own(fd)
            return fd
        try:
            return os.open(self.root, _O_DIR)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeEntry(self.agent, str(self.root), "not a plain folder", "a folder") from None
            raise

    def _lkind(self, dirfd: int, name: str) -> int | None:
        """The mode of ``name`` in ``dirfd`` (not following a link), or None if absent."""
        try:
            return os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None

    def _clear(self, dirfd: int, name: str, rel: str, keep_files: bool) -> None:
        """Make way for crowdtui's own entry: links and other non-folders are replaced by
        what crowdtui writes next (``rename`` does not follow them); folders are moved aside."""
        mode = self._lkind(dirfd, name)
        if mode is None or (keep_files and stat.S_ISREG(mode)):
            return
        found = describe(mode)
        if stat.S_ISDIR(mode):
            aside = f"{name}.moved-aside-{secrets.token_hex(4)}"
            os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
            self._note(rel, found, f"moved aside to {aside}")
        else:
            os.unlink(name, dir_fd=dirfd)
            self._note(rel, found, "replaced")

    def _step(self, dirfd: int, name: str, rel: str, create: bool) -> int:
        for _ in range(3):  # the agent may race us; a few tries, then refuse
            try:
                return os.open(name, _O_DIR, dir_fd=dirfd)
            except FileNotFoundError:
                if not create:
                    raise
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                mode = self._lkind(dirfd, name)
                found = describe(mode) if mode is not None else "gone"
                if not create:
                    self._note(rel, found, "refused")
                    raise UnsafeEntry(self.agent, rel, found, "a folder") from None
                if mode is not None:
                    if stat.S_ISLNK(mode):
                        os.unlink(name, dir_fd=dirfd)
                        self._note(rel, found, "replaced")
                    else:
                        aside = f"{name}.moved-aside-{secrets.token_hex(4)}"
                        os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
                        self._note(rel, found, f"moved aside to {aside}")
            try:
                os.mkdir(name, 0o755, dir_fd=dirfd)  # mkdirat: never follows a link
            except FileExistsError:
                continue
            fd = os.open(name, _O_DIR, dir_fd=dirfd)
            self._own(fd)
            return fd
        raise UnsafeEntry(self.agent, rel, "changing while crowdtui works on it", "a folder")

    @contextmanager
    def directory(self, rel: str | os.PathLike = "", *, create: bool = False) -> Iterator[int]:
        """A descriptor of the folder ``rel`` (created, owned by the agent, when ``create``)."""
        parts = _parts(rel)
        fd = self._open_root(create)
        try:
            done: list[str] = []
            for part in parts:
                done.append(part)
                nxt = self._step(fd, part, "/".join(done), create)
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def ensure_dir(self, rel: str | os.PathLike) -> None:
        """Make ``rel`` a real folder of the agent's (links and files in the way are cleared)."""
        with self.directory(rel, create=True) as fd:
            if _parts(rel) or self.own_root:
                self._own(fd)
            elif os.geteuid() == 0:  # crowdtui's own folder: the agent may use it, not write it
                st = os.fstat(fd)
                if (st.st_uid, st.st_gid) != (0, 0):
                    os.fchown(fd, 0, 0)
                os.fchmod(fd, 0o755)

    # ---- files -----------------------------------------------------------------------

    def read(self, rel: str | os.PathLike, *, max_bytes: int = MAX_READ) -> bytes | None:
        """The content of a plain file, or None when there is none.

        A link, FIFO, device, folder, hard-linked or oversized file raises
        :class:`UnsafeEntry` (and is noted as ``ignored``); nothing is followed or opened
        that could block.
        """
        parts = _parts(rel)
        if not parts:
            raise ValueError("read needs a file name")
        relpath = "/".join(parts)
        try:
            with self.directory("/".join(parts[:-1])) as dirfd:
                try:
                    fd = os.open(parts[-1], _O_READ, dir_fd=dirfd)
                except FileNotFoundError:
                    return None
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
                        raise
                    mode = self._lkind(dirfd, parts[-1])
                    found = describe(mode) if mode is not None else "gone"
                    self._note(relpath, found, "ignored")
                    raise UnsafeEntry(self.agent, relpath, found) from None
                try:
                    st = os.fstat(fd)
                    problem = None
                    if not stat.S_ISREG(st.st_mode):
                        problem = describe(st.st_mode)
                    elif st.st_nlink != 1:
                        problem = f"a file with {st.st_nlink} hard links"
                    elif st.st_size > max_bytes:
                        problem = f"{st.st_size} bytes (the limit is {max_bytes})"
                    if problem:
                        self._note(relpath, problem, "ignored")
                        raise UnsafeEntry(self.agent, relpath, problem)
                    data = os.read(fd, max_bytes + 1)
                    if len(data) > max_bytes:
                        self._note(relpath, f"more than {max_bytes} bytes", "ignored")
                        raise UnsafeEntry(self.agent, relpath, f"more than {max_bytes} bytes")
                    return data
                finally:
                    os.close(fd)
        except FileNotFoundError:
            return None

    def write(self, rel: str | os.PathLike, data: bytes | str, *, mode: int = 0o644) -> Path:
        """Replace ``rel`` with a plain file holding ``data`` (mode ``mode``, the agent's).

        Written to a new temporary file and renamed into place: whatever stood at ``rel``
        (a link, a FIFO...) is replaced, never followed; a folder there is moved aside.
        Links planted beside it (``NAME.*``, ``.NAME.*``) are removed and noted too.
        """
        parts = _parts(rel)
        if not parts:
            raise ValueError("write needs a file name")
        if isinstance(data, str):
            data = data.encode("utf-8")
        name, relpath = parts[-1], "/".join(parts)
        parent = "/".join(parts[:-1])
        with self.directory(parent, create=True) as dirfd:
            self._put(dirfd, name, relpath, data, mode)
            self._sweep_beside(dirfd, name, parent)
        return self.root / relpath

    def ensure_file(self, rel: str | os.PathLike, *, mode: int = 0o644) -> Path:
        """Make ``rel`` a plain file (empty when new; an existing plain file is kept)."""
        parts = _parts(rel)
        name, relpath = parts[-1], "/".join(parts)
        with self.directory("/".join(parts[:-1]), create=True) as dirfd:
            current = self._lkind(dirfd, name)
            if current is not None and stat.S_ISREG(current):
                fd = os.open(name, _O_READ, dir_fd=dirfd)
                try:
                    st = os.fstat(fd)
                    if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                        self._own(fd)
                finally:
                    os.close(fd)
                return self.root / relpath
            self._put(dirfd, name, relpath, b"", mode)
        return self.root / relpath

    def unlink(self, rel: str | os.PathLike) -> bool:
        """Remove the entry ``rel`` (a link itself, never its target); a folder is left alone."""
        parts = _parts(rel)
        try:
            with self.directory("/".join(parts[:-1])) as dirfd:
                os.unlink(parts[-1], dir_fd=dirfd)
                return True
        except (FileNotFoundError, IsADirectoryError, UnsafeEntry):
            return False
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.EPERM, errno.ENOTDIR):
                return False
            raise

    def _put(self, dirfd: int, name: str, relpath: str, data: bytes, mode: int) -> None:
        """A new file with ``data`` renamed over ``name`` (a link there is replaced, not followed)."""
        tmp = self._new_file(dirfd, name, data, mode)
        try:
            self._clear(dirfd, name, relpath, keep_files=True)
            os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dirfd)
            except OSError:
                pass
            raise

    def _new_file(self, dirfd: int, name: str, data: bytes, mode: int) -> str:
        for _ in range(5):
            tmp = f".{name}.crowd-{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(tmp, _O_NEW, 0o600, dir_fd=dirfd)
            except FileExistsError:
                continue
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)
                self._own(fd)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=dirfd)
                raise
            os.close(fd)
            return tmp
        raise UnsafeEntry(self.agent, name, "crowded with temporary names", "free to write")

    def _sweep_beside(self, dirfd: int, name: str, parent: str) -> None:
        """Remove links planted next to a file crowdtui manages (where a temporary might go)."""
        prefixes = (f"{name}.", f".{name}.")
        try:
            entries = os.listdir(dirfd)
        except OSError:
            return
        for entry in entries:
            if not entry.startswith(prefixes):
                continue
            mode = self._lkind(dirfd, entry)
            if mode is not None and stat.S_ISLNK(mode):
                try:
                    os.unlink(entry, dir_fd=dirfd)
                except OSError:
                    continue
                self._note(f"{parent}/{entry}" if parent else entry, "a symbolic link", "removed")

    # ---- sockets ---------------------------------------------------------------------

    def _staging_fd(self) -> int:
        """Our private staging folder (0700, ours): nobody else can swap what is bound there."""
        try:
            os.mkdir(self.staging, 0o700)
        except FileExistsError:
            pass
        fd = os.open(self.staging, _O_DIR)
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            os.close(fd)
            raise UnsafeEntry("", str(self.staging), f"owned by uid {st.st_uid}", "crowdtui's own folder")
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
        return fd

    def bind_socket(self, rel: str | os.PathLike, *, mode: int = 0o600, backlog: int = 64) -> socket.socket:
        """A listening unix socket at ``rel``, owned by the agent user, mode ``mode``.

        Bound in the staging folder, given mode and owner there, then renamed into the
        agent's folder (replacing whatever stood there). Long paths are no problem: the
        address is ``/proc/self/fd/<staging>/<name>``.
        """
        parts = _parts(rel)
        name, relpath = parts[-1], "/".join(parts)
        stage = self._staging_fd()
        tmp = f"{self.agent}.{name}.{secrets.token_hex(6)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"/proc/self/fd/{stage}/{tmp}")
            try:
                os.chmod(f"/proc/self/fd/{stage}/{tmp}", mode)  # private folder: no link possible
                if self.owner is not None:
                    os.chown(tmp, *self.owner, dir_fd=stage, follow_symlinks=False)
                with self.directory("/".join(parts[:-1]), create=True) as dirfd:
                    self._clear(dirfd, name, relpath, keep_files=False)
                    os.rename(tmp, name, src_dir_fd=stage, dst_dir_fd=dirfd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=stage)
                except OSError:
                    pass
                raise
            sock.listen(backlog)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EXDEV:
                raise CrowdError(f"{self.staging} and {self.root} must be on one filesystem to "
                                 "hand over sockets safely") from None
            raise
        except BaseException:
            sock.close()
            raise
        finally:
            os.close(stage)
