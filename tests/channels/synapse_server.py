"""A real Matrix homeserver (Synapse, SQLite) on 127.0.0.1 for the Matrix channel's tests.

Synapse lives in its own virtualenv, kept by scripts/setup.sh under
``~/.cache/crowdtui/synapse-<version>`` (the version is ``SYNAPSE_VERSION`` in that
script, its one home), never in the project's. Each server gets a fresh folder: a
generated configuration (keys, SQLite database) plus an override (listener on a free
127.0.0.1 port, rate limits off, a registration secret), and users made with Synapse's
own ``register_new_matrix_user``. Started and stopped by pid.
"""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def synapse_bin() -> Path:
    version = re.search(r"^SYNAPSE_VERSION=(\S+)", (REPO / "scripts" / "setup.sh").read_text(), re.M).group(1)
    path = Path.home() / ".cache" / "crowdtui" / f"synapse-{version}" / "bin"
    if not (path / "synapse_homeserver").exists():
        raise AssertionError(f"Synapse {version} is not installed at {path}; run `make setup`")
    return path


class Synapse:
    """Synchronous on purpose: started once per test module by a plain fixture."""

    def __init__(self) -> None:
        self.bin = synapse_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="crowd-synapse-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Synapse":
        d = self.dir
        subprocess.run([str(self.bin / "synapse_homeserver"), "--server-name", "localhost", "--config-path",
                        str(d / "hs.yaml"), "--data-directory", str(d), "--generate-config", "--report-stats=no"],
                       cwd=d, check=True, capture_output=True, timeout=60)
        limits = {"per_second": 1000, "burst_count": 1000}
        override = {
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                           "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
            "registration_shared_secret": self.secret, "enable_registration": False,
            "trusted_key_servers": [], "suppress_key_server_warning": True, "report_stats": False,
            "rc_message": limits, "rc_registration": limits, "rc_joins": {"local": limits, "remote": limits},
            "rc_login": {"address": limits, "account": limits, "failed_attempts": limits},
            "rc_invites": {"per_room": limits, "per_user": limits, "per_issuer": limits},
            "rc_admin_redaction": limits, "rc_3pid_validation": limits,
            "max_upload_size": "10M", "url_preview_enabled": False,
            # Synapse answers a repeated /sync from its cache for 2 minutes by default: each test's
            # fresh channel (same device, same first request) would be served the previous test's
            "caches": {"sync_response_cache_duration": 0},
        }
        import json

        (d / "override.yaml").write_text(json.dumps(override))  # YAML is a superset of JSON
        return self.run()

    def run(self) -> "Synapse":
        """Start the configured server (again, after :meth:`halt`) and wait until it answers."""
        d = self.dir
        log = open(d / "stderr.log", "a")
        self.proc = subprocess.Popen([str(self.bin / "synapse_homeserver"), "-c", str(d / "hs.yaml"),
                                      "-c", str(d / "override.yaml")], cwd=d, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + "/_matrix/client/versions", timeout=2, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"Synapse did not answer on {self.url}: {(d / 'stderr.log').read_text()[-3000:]}")

    def register(self, localpart: str, password: str) -> str:
        subprocess.run([str(self.bin / "register_new_matrix_user"), "-u", localpart, "-p", password, "--no-admin",
                        "-k", self.secret, self.url], check=True, capture_output=True, timeout=60)
        return f"@{localpart}:localhost"

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server process, keeping its folder (database, keys) for :meth:`run`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
