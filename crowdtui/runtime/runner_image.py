"""Runner images: a runner's program on top of the agent image, with no network in the build.

``crowdtui image build --runner claude-code``:

1. the agent image (:func:`crowdtui.runtime.image.ensure_image`);
2. each of the runner's npm packages fetched on the host with the host's own ``npm pack``
   (its registry, CA and proxy settings), kept under ``<cache>/npm/`` by name and version
   and never fetched twice;
3. a build context holding those tarballs and the runner's small files, and a Dockerfile
   ``FROM`` the agent image that ``ADD``s them (the engine unpacks them; nothing inside the
   build reaches a network).

The result is ``crowdtui-<runner>:<hash of every input>`` (the agent image's inputs, the
package specs, the layer's lines and files). Versions are pinned in crowd.toml
(``[runners.<name>] version = "..."``); ``--upgrade`` moves the pins to the newest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from crowdtui.runners import NpmPackage, Runner
from crowdtui.runtime.image import (INPUTS_LABEL, ImageError, Progress, build_lock, build_output, cache_dir,
                                    engine_call, ensure_image, image_exists, inputs_hash)

REPOSITORY_PREFIX = "crowdtui-"  # crowdtui-claude-code:<hash>
NPM_TIMEOUT = 1800  # seconds one npm pack may take (the Claude Code package is ~190 MB)


def npm_cache() -> Path:
    return cache_dir() / "npm"


def tarball_name(pkg: NpmPackage, version: str) -> str:
    """The cached file of one package version, e.g. ``anthropic-ai-claude-code-linux-x64-2.1.333.tgz``."""
    tree = "-tree" if pkg.tree else ""  # a node_modules/ tree with dependencies, not npm pack's file
    return f"{pkg.name.lstrip('@').replace('/', '-')}-{version}{pkg.suffix}{tree}.tgz"


def repository(runner: Runner) -> str:
    return f"{REPOSITORY_PREFIX}{runner.name}"


def _specs(runner: Runner, settings: dict[str, Any]) -> list[tuple[NpmPackage, str]]:
    versions = runner.versions(settings)
    return [(pkg, versions[pkg.name]) for pkg in runner.packages]


def _layer(runner: Runner, settings: dict[str, Any]):
    return runner.layer({pkg.name: tarball_name(pkg, ver) for pkg, ver in _specs(runner, settings)})


def dockerfile(runner: Runner, settings: dict[str, Any], base: str) -> str:
    layer = _layer(runner, settings)
    return "\n".join([f"# {runner.name} on the crowdtui agent image (crowdtui image build --runner {runner.name})",
                      f"FROM {base}", *layer.lines, ""])


def runner_image_tag(runner: Runner, settings: dict[str, Any]) -> str:
    """The tag the runner's image built from the current inputs has."""
    h = hashlib.sha256()
    h.update(f"{inputs_hash()}\0{runner.name}\0".encode())
    for pkg, version in _specs(runner, settings):
        h.update(f"{pkg.spec(version)}\0".encode())
    layer = _layer(runner, settings)
    h.update("\n".join(layer.lines).encode())
    for name in sorted(layer.files):
        h.update(f"\0{name}\0{layer.files[name]}".encode())
    return f"{repository(runner)}:{h.hexdigest()[:16]}"


# --- npm on the host ------------------------------------------------------------------


def _npm() -> str:
    exe = shutil.which(os.environ.get("CROWD_NPM", "npm"))
    if exe is None:
        raise ImageError("npm is not installed on this machine; install Node.js with npm (Debian: "
                         "apt-get install npm) so crowdtui can fetch the runner's packages on the host")
    return exe


def _npm_failure(spec: str, output: str) -> ImageError:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    codes = [ln for ln in lines if re.match(r"npm (ERR!|error) code ", ln)]
    network = [ln.split(None, 2)[-1] for ln in lines if re.match(r"npm (ERR!|error) (request to|network|errno)", ln)]
    detail = network[0] if network else (codes[0].split()[-1] if codes else (lines[-1] if lines else "no output"))
    if any(c.endswith(("E404", "ETARGET")) for c in codes):
        return ImageError(f"npm has no {spec}; check the version pinned in crowd.toml ([runners.*]) "
                          "or run `crowdtui image build --runner NAME --upgrade`")
    return ImageError(f"npm could not fetch {spec} ({detail[:160]}); check that the registry "
                      f"(`npm config get registry`) is reachable from this machine, then retry")


def fetch_package(pkg: NpmPackage, version: str, progress: Progress) -> Path:
    """The package's tarball in the cache, fetched with ``npm pack`` only when missing."""
    target = npm_cache() / tarball_name(pkg, version)
    spec = pkg.spec(version)
    if target.is_file():
        progress(f"{spec}: cached ({target.stat().st_size / 1e6:.0f} MB)")
        return target
    npm = _npm()
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pack-", dir=target.parent) as tmp:
        progress(f"{spec}: downloading with the host's npm")
        done = threading.Event()

        def report() -> None:  # npm pack prints nothing while it downloads
            while not done.wait(10):
                progress(f"{spec}: still downloading ({time.monotonic() - started:.0f} s)")

        ticker = threading.Thread(target=report, daemon=True)
        ticker.start()
        if pkg.tree:  # installed with its dependencies (no install scripts run), packed as one tree
            args = [npm, "install", spec, "--prefix", tmp, "--omit=dev", "--ignore-scripts", "--no-audit",
                    "--no-fund", "--no-save", "--no-package-lock"]
        else:
            args = [npm, "pack", spec, "--json", "--pack-destination", tmp]
        try:
            proc = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=NPM_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ImageError(f"npm pack {spec} took over {NPM_TIMEOUT // 60} minutes; check the network "
                             "and retry") from None
        finally:
            done.set()
        if proc.returncode != 0:
            raise _npm_failure(spec, proc.stderr + proc.stdout)
        if pkg.tree:
            _pack_tree(Path(tmp), target)
            progress(f"{spec}: installed with its dependencies, {target.stat().st_size / 1e6:.0f} MB packed "
                     f"in {time.monotonic() - started:.0f} s")
            return target
        try:
            filename = json.loads(proc.stdout)[0]["filename"]
        except (ValueError, KeyError, IndexError, TypeError):
            packed = sorted(Path(tmp).glob("*.tgz"))
            if not packed:
                raise ImageError(f"npm pack {spec} produced no tarball; run it by hand to see why") from None
            filename = packed[0].name
        (Path(tmp) / Path(filename).name).replace(target)
    progress(f"{spec}: {target.stat().st_size / 1e6:.0f} MB in {time.monotonic() - started:.0f} s")
    return target


def _pack_tree(prefix: Path, target: Path) -> None:
    """``prefix/node_modules`` as one gzipped tarball (the engine's ADD unpacks it), written whole
    or not at all."""
    import tarfile

    if not (prefix / "node_modules").is_dir():
        raise ImageError(f"npm install left no node_modules in {prefix}; run it by hand to see why")
    partial = target.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(prefix / "node_modules", arcname="node_modules")
    partial.replace(target)


def newest_versions(runner: Runner) -> dict[str, str]:
    """Each package's newest version on the registry (``npm view NAME version``), by its setting key."""
    npm = _npm()
    out = {}
    for pkg in runner.packages:
        proc = subprocess.run([npm, "view", pkg.name, "version"], capture_output=True, text=True, timeout=120)
        version = proc.stdout.strip().splitlines()[-1].strip().strip("'") if proc.stdout.strip() else ""
        if proc.returncode != 0 or not version:
            raise _npm_failure(pkg.name, proc.stderr + proc.stdout)
        out[pkg.setting] = version
    return out


def pin_versions(config_file: Path, runner: Runner, pins: dict[str, str]) -> None:
    """Write ``[runners.<name>] <key> = "<version>"`` into crowd.toml, keeping everything else."""
    text = config_file.read_text(encoding="utf-8") if config_file.is_file() else ""
    header = f'[runners.{runner.name}]'
    lines = text.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() in (header, f'[runners."{runner.name}"]'))
    except StopIteration:
        lines += ["", header] + [f'{k} = "{v}"' for k, v in pins.items()]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
        for key, version in pins.items():
            at = next((i for i in range(start + 1, end) if re.match(rf"\s*{re.escape(key)}\s*=", lines[i])), None)
            if at is None:
                lines.insert(start + 1, f'{key} = "{version}"')
                end += 1
            else:
                lines[at] = f'{key} = "{version}"'
    config_file.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")


# --- the image ------------------------------------------------------------------------


def ensure_runner_image(client, runner: Runner, settings: dict[str, Any], progress: Progress = print,
                        force: bool = False) -> str:
    """The runner's image tag, fetching and building what is missing."""
    if not runner.packages:
        return ensure_image(client, progress, force=force)
    tag = runner_image_tag(runner, settings)
    if not force and engine_call(image_exists, client, tag):
        progress(f"{runner.name} image: {tag} present")
        return tag
    base = ensure_image(client, progress)
    tarballs = [(pkg, ver, fetch_package(pkg, ver, progress)) for pkg, ver in _specs(runner, settings)]
    with build_lock():
        if not force and engine_call(image_exists, client, tag):
            return tag
        layer = _layer(runner, settings)
        with tempfile.TemporaryDirectory(prefix="layer-", dir=npm_cache()) as tmp:
            context = Path(tmp)
            for _pkg, _ver, path in tarballs:
                os.link(path, context / path.name)  # same folder tree: no copy of 190 MB
            for name, text in layer.files.items():
                (context / name).write_text(text, encoding="utf-8")
                os.chmod(context / name, 0o755)
            (context / "Dockerfile").write_text(dockerfile(runner, settings, base), encoding="utf-8")
            started = time.monotonic()
            progress(f"{runner.name} image: unpacking into a layer on {base}")
            repo, _, version = tag.partition(":")
            stream = engine_call(client.api.build, path=str(context), tag=tag, labels={INPUTS_LABEL: version},
                                  rm=True, forcerm=True, nocache=force, pull=False, decode=True)
            for chunk in build_output(stream):
                if "error" in chunk:
                    raise ImageError(f"building the {runner.name} image failed: {str(chunk['error']).strip()}; "
                                     f"retry with `crowdtui image build --runner {runner.name} --force`")
                text = str(chunk.get("stream", "")).strip()
                if text.startswith("Step "):
                    progress(f"{runner.name} image: {text.splitlines()[0][:100]}")
            if not engine_call(image_exists, client, tag):
                raise ImageError(f"the build finished without producing {tag}; run with --force")
            progress(f"{runner.name} image: {tag} built in {time.monotonic() - started:.0f} s")
    return tag
