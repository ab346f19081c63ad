"""The agent image, built without any registry.

``docker/Dockerfile`` is the image for people with a registry (``FROM debian:bookworm-slim``).
Here nothing can be pulled, so :func:`ensure_image` makes the base itself:

1. ``debootstrap --variant=minbase --include=<PACKAGES> bookworm DIR`` (about a minute),
   cached as a tarball keyed by a hash of the package list;
2. ``docker import`` of that tarball as ``crowdtui-base:<hash>`` (skipped if present);
3. ``docker/Dockerfile`` built on top with ``BASE=crowdtui-base:<hash>``.

The result is tagged ``crowdtui-agent:<hash of every input>`` and ``crowdtui-agent:latest``.
When that tag exists nothing is done, so a second run takes a moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from crowdtui.errors import CrowdError, EngineUnavailable
from crowdtui.runtime.engine import engine_errors

PACKAGES: tuple[str, ...] = ("python3", "bash", "socat", "tini", "git", "ca-certificates")
SUITE = "bookworm"
VARIANT = "minbase"
REPOSITORY = "crowdtui-agent"
BASE_REPOSITORY = "crowdtui-base"
INPUTS_LABEL = "crowdtui.image.inputs"

Progress = Callable[[str], None]

_IGNORED_NAMES = {"__pycache__", ".DS_Store"}
_IGNORED_SUFFIXES = (".pyc", ".swp", "~")


class ImageError(CrowdError):
    """The agent image could not be built."""


def docker_dir() -> Path:
    """The folder holding the Dockerfile and ``bin/`` (the build context): the checkout's
    ``docker/``, or the copy an installed wheel carries (:mod:`crowdtui.shipped`)."""
    from crowdtui.shipped import shipped_path

    folder = shipped_path("docker")
    if not (folder / "Dockerfile").is_file() or not (folder / "bin").is_dir():
        raise ImageError(
            f"the agent image's build files are not at {folder}; reinstall crowdtui "
            "(`pipx install ./dist/crowdtui-*.whl`, or `make setup` in its checkout), or build "
            "docker/Dockerfile yourself and set [runtime] image in crowd.toml"
        )
    return folder


def cache_dir() -> Path:
    """Where root filesystem tarballs are kept: $CROWD_CACHE, else ~/.cache/crowdtui."""
    explicit = os.environ.get("CROWD_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "crowdtui"


def _short(digest: hashlib._Hash) -> str:
    return digest.hexdigest()[:16]


def base_hash() -> str:
    """Hash of what goes into the debootstrap root filesystem."""
    h = hashlib.sha256()
    h.update(f"{SUITE}\n{VARIANT}\n{','.join(sorted(PACKAGES))}\n".encode())
    return _short(h)


def base_tag() -> str:
    return f"{BASE_REPOSITORY}:{base_hash()}"


def _context_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _IGNORED_NAMES for part in rel.parts):
            continue
        if path.name.endswith(_IGNORED_SUFFIXES) or not path.is_file():
            continue
        yield path


def inputs_hash() -> str:
    """Hash of every input of the image: the package list and every file under docker/."""
    root = docker_dir()
    if not (root / "Dockerfile").is_file():
        raise ImageError(f"{root / 'Dockerfile'} is missing; restore it from the repository")
    h = hashlib.sha256()
    h.update(base_hash().encode())
    for path in _context_files(root):
        rel = path.relative_to(root).as_posix()
        executable = os.access(path, os.X_OK)
        h.update(f"\0{rel}\0{int(executable)}\0".encode())
        h.update(path.read_bytes())
    return _short(h)


def image_tag() -> str:
    """The tag the agent image built from the current inputs has: ``crowdtui-agent:<hash>``."""
    return f"{REPOSITORY}:{inputs_hash()}"


def latest_tag() -> str:
    return f"{REPOSITORY}:latest"


# --- engine helpers ---------------------------------------------------------------


def image_exists(client, ref: str) -> bool:
    """Whether the engine has the image ``ref``."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


def engine_call(fn, *args, **kwargs):
    """Run an SDK call, turning a vanished engine into a plain error."""
    with engine_errors(ImageError, then="re-run `crowdtui image build`"):
        return fn(*args, **kwargs)


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One build at a time per machine (parallel test runs share the cache)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- the root filesystem ------------------------------------------------------------


def rootfs_tarball() -> Path:
    return cache_dir() / f"rootfs-{SUITE}-{base_hash()}.tar"


def _check_debootstrap() -> str:
    explicit = os.environ.get("CROWD_DEBOOTSTRAP")  # a debootstrap somewhere else
    if explicit:
        exe = explicit if os.access(explicit, os.X_OK) else None
    else:
        exe = shutil.which("debootstrap") or next(
            (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)), None
        )
    if exe is None:
        raise ImageError(
            "debootstrap is not installed; run `apt-get install debootstrap` "
            "(or build docker/Dockerfile with a registry: docker build -t crowdtui-agent docker/)"
        )
    if os.geteuid() != 0:
        raise ImageError(
            "building the base image needs root (debootstrap); re-run as root, e.g. "
            "`sudo crowdtui image build`"
        )
    return exe


def make_rootfs(progress: Progress, *, force: bool = False) -> Path:
    """The debootstrap root filesystem as a tarball (cached by the package list)."""
    target = rootfs_tarball()
    if target.is_file() and not force:
        progress(f"root filesystem: cached {target}")
        return target
    exe = _check_debootstrap()
    target.parent.mkdir(parents=True, exist_ok=True)
    mirror = os.environ.get("CROWD_DEBIAN_MIRROR", "")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        cmd = [exe, f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(root)]
        if mirror:
            cmd.append(mirror)
        progress(f"root filesystem: debootstrap {SUITE} with {', '.join(PACKAGES)} (about a minute)")
        _run_debootstrap(cmd, progress)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / junk).glob("*"):
                if item.is_file():
                    item.unlink()
        progress("root filesystem: packing")
        partial = target.with_suffix(".tar.partial")
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
             "--exclude=./sys/*", "-cf", str(partial), "."],
            check=True,
        )
        partial.replace(target)
    return target


def _run_debootstrap(cmd: list[str], progress: Progress) -> None:
    started = time.monotonic()
    last_report = started
    tail: list[str] = []
    phases: set[str] = set()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-8:]
        if not line.startswith("I: "):
            continue
        # "I: Retrieving libc6 2.36..." -> each phase once, then a line every 10 s.
        word = line[3:].split(" ", 1)[0]
        now = time.monotonic()
        if word not in phases or now - last_report >= 10:
            phases.add(word)
            last_report = now
            progress(f"root filesystem: {line[3:]} ({now - started:.0f} s)")
    code = proc.wait()
    if code != 0:
        last = next((t for t in reversed(tail) if t.startswith("E: ")), tail[-1] if tail else "")
        raise ImageError(
            f"debootstrap failed ({last.strip() or f'exit {code}'}); check the network "
            "or set CROWD_DEBIAN_MIRROR to a reachable Debian mirror"
        )
    progress(f"root filesystem: done in {time.monotonic() - started:.0f} s")


def ensure_base(client, progress: Progress = print, *, force: bool = False) -> str:
    """The imported base image tag, importing (and bootstrapping) it if needed."""
    tag = base_tag()
    if not force and engine_call(image_exists, client, tag):
        progress(f"base image: {tag} present")
        return tag
    tarball = make_rootfs(progress, force=force)
    progress(f"base image: importing {tarball.name} as {tag}")
    repo, _, version = tag.partition(":")
    engine_call(client.api.import_image_from_file, str(tarball), repository=repo, tag=version)
    if not engine_call(image_exists, client, tag):
        raise ImageError(f"importing {tarball} did not produce {tag}; remove the file and retry")
    return tag


# --- the agent image ---------------------------------------------------------------


def ensure_image(client, progress: Progress = print, force: bool = False) -> str:
    """The agent image's tag, building it first when it is missing (or ``force``)."""
    tag = image_tag()
    if not force and engine_call(image_exists, client, tag):
        _tag_latest(client, tag)
        return tag
    with build_lock():
        tag = image_tag()
        if not force and engine_call(image_exists, client, tag):  # another process built it
            _tag_latest(client, tag)
            return tag
        base = ensure_base(client, progress, force=force)
        _build(client, tag, base, progress, nocache=force)
        _tag_latest(client, tag)
    progress(f"agent image: {tag} (also {latest_tag()})")
    return tag


def _tag_latest(client, tag: str) -> None:
    image = engine_call(client.images.get, tag)
    if latest_tag() not in image.tags:
        repo, _, version = latest_tag().partition(":")
        engine_call(image.tag, repo, version)


def _build(client, tag: str, base: str, progress: Progress, *, nocache: bool) -> None:
    progress(f"agent image: building docker/Dockerfile on {base}")
    repo, _, version = tag.partition(":")
    stream = engine_call(
        client.api.build,
        path=str(docker_dir()),
        tag=tag,
        buildargs={"BASE": base},
        labels={INPUTS_LABEL: version},
        rm=True,
        forcerm=True,
        nocache=nocache,
        pull=False,
        decode=True,
    )
    tail: list[str] = []
    for chunk in build_output(stream):
        if "error" in chunk:
            detail = str(chunk.get("error", "")).strip()
            context = " | ".join(t for t in tail[-3:] if t)
            raise ImageError(
                f"building docker/Dockerfile failed: {detail}"
                + (f" (after: {context})" if context else "")
                + "; fix docker/ and run `crowdtui image build` again"
            )
        text = str(chunk.get("stream", "")).strip()
        if text:
            tail = (tail + text.splitlines())[-10:]
            if text.startswith("Step "):
                first = text.splitlines()[0]
                progress(f"agent image: {first[:100] + '...' if len(first) > 100 else first}")
    if not engine_call(image_exists, client, tag):
        raise ImageError(f"the build finished without producing {tag}; run with --force")


def build_output(stream):
    """The chunks of a build's output stream; an engine gone mid-build becomes EngineUnavailable."""
    import requests

    try:
        yield from stream
    except requests.exceptions.ConnectionError as exc:
        raise EngineUnavailable(
            "the Docker engine stopped answering during the build; start it and retry"
        ) from exc


def list_images(client) -> list[dict]:
    """Agent and base images present in the engine."""
    rows = []
    current = image_tag()
    for repo in (REPOSITORY, BASE_REPOSITORY):
        for image in engine_call(client.images.list, name=repo):
            rows.append({
                "id": image.short_id.split(":", 1)[-1],
                "tags": sorted(image.tags),
                "created": image.attrs.get("Created", ""),
                "size_mb": round(image.attrs.get("Size", 0) / 1e6, 1),
                "current": current in image.tags,
            })
    return rows


def prune_images(client, progress: Progress = print) -> list[str]:
    """Remove agent images of older inputs that no container uses; returns the removed tags."""
    from docker.errors import APIError

    keep = {image_tag(), latest_tag()}
    current = engine_call(client.images.get, image_tag()).id if engine_call(image_exists, client, image_tag()) else None
    removed = []
    for image in engine_call(client.images.list, name=REPOSITORY):
        if image.id == current:
            continue
        for tag in image.tags:
            if tag in keep:
                continue
            try:
                client.images.remove(tag, noprune=False)
            except APIError as exc:  # in use by a container, kept
                progress(f"kept {tag}: {exc.explanation or exc}")
                continue
            removed.append(tag)
            progress(f"removed {tag}")
    return removed
