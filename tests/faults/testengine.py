"""A Docker engine of its own for fault tests and bench/faults.py: a separate dockerd in its
own network namespace (FIELD-NOTES "Several engines"), so it can be stopped and started
again without touching the machine's main engine that other tests use.

``TestEngine(folder).start()`` → ``.url`` (unix://…), ``.client()``; ``.stop()`` (SIGTERM:
the engine stops its containers, as `systemctl restart docker` does); ``.start()`` again
on the same data; ``.destroy()`` removes the process (by its pid only), the namespace and
the folders.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


class TestEngine:
    __test__ = False  # not a pytest class

    def __init__(self, folder: Path, name: str | None = None, *, args: tuple[str, ...] = ("--bridge=none",),
                 config: dict | None = None):
        """``args``: more dockerd options (tests/engines adds tcp+TLS and keeps a bridge);
        ``config``: more daemon.json keys (``live-restore``)."""
        self.args = tuple(args)
        self.folder = Path(folder)
        self.ns = name or f"crowdfault{os.getpid()}"
        self.sock = self.folder / "docker.sock"
        self.url = f"unix://{self.sock}"
        self.proc: subprocess.Popen | None = None
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "daemon.json").write_text(json.dumps(
            {"deprecated-key-path": str(self.folder / "key.json"), **(config or {})}))
        self._ns_made = False

    def start(self, timeout: float = 60.0) -> float:
        """Start dockerd; returns the seconds until it answered."""
        if not self._ns_made:
            subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
            self._ns_made = True
        began = time.monotonic()
        log = open(self.folder / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.ns}", "dockerd",
             "--data-root", str(self.folder / "data"), "--exec-root", str(self.folder / "exec"),
             "-H", self.url, "--pidfile", str(self.folder / "docker.pid"),
             "--config-file", str(self.folder / "daemon.json"), "--iptables=false", *self.args],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        while time.monotonic() - began < timeout:
            if self.answers():
                return time.monotonic() - began
            if self.proc.poll() is not None:
                raise RuntimeError(f"test dockerd exited {self.proc.returncode}; see {self.folder / 'dockerd.log'}")
            time.sleep(0.1)
        raise RuntimeError(f"test dockerd did not answer within {timeout:.0f} s")

    def answers(self) -> bool:
        import docker

        try:
            c = docker.DockerClient(base_url=self.url, timeout=5)
            try:
                return bool(c.ping())
            finally:
                c.close()
        except Exception:
            return False

    def client(self, timeout: int = 60):
        import docker

        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def load_image(self, source_client, image: str) -> None:
        """Copy ``image`` from another engine into this one (save → load, as for Swarm nodes)."""
        target = self.client(timeout=600)
        try:
            target.images.load(source_client.images.get(image).save(named=True))
        finally:
            target.close()

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM the dockerd (by its pid) and wait for it to go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            if self._ns_made:
                subprocess.run(["ip", "netns", "delete", self.ns], check=False, capture_output=True)
                self._ns_made = False
            for sub in ("exec", "data"):  # container mounts may linger under these
                path = self.folder / sub
                if path.exists():
                    subprocess.run(["sh", "-c", f"grep ' {path}' /proc/mounts | cut -d' ' -f2 | sort -r"
                                    " | xargs -r -n1 umount -l"], check=False, capture_output=True)
            shutil.rmtree(self.folder, ignore_errors=True)
