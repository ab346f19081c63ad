"""An extra Docker engine made by a test: its own dockerd in its own network namespace, reached
over tcp with TLS (certificates made here with openssl), removed afterwards.

Recipe from FIELD-NOTES "Several engines": ``ip netns add``, a veth pair (host side
10.251.N.1, engine side 10.251.N.2), ``nsenter --net=… dockerd`` (never ``ip netns exec``: it
remounts /sys and dockerd fails on cgroups; never in the host's namespace: a dockerd may
delete docker0 there), its own ``daemon.json`` with ``deprecated-key-path`` (else every
engine reports the same ID) and ``live-restore`` (its containers outlive a daemon restart,
as a remote machine's do when only its engine goes away).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.testengine import TestEngine

PORT = 2376


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60)


def make_certs(folder: Path, server_ip: str) -> dict[str, Path]:
    """A CA, a server certificate for ``server_ip`` and a client certificate (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    f = {k: folder / k for k in ("ca.pem", "ca-key.pem", "server.pem", "server-key.pem",
                                 "cert.pem", "key.pem")}
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=crowd-test-ca",
         "-keyout", str(f["ca-key.pem"]), "-out", str(f["ca.pem"]))
    for who, cn, ext in (("server", server_ip, f"subjectAltName=IP:{server_ip}\nextendedKeyUsage=serverAuth"),
                         ("client", "crowd-client", "extendedKeyUsage=clientAuth")):
        key = f["server-key.pem"] if who == "server" else f["key.pem"]
        cert = f["server.pem"] if who == "server" else f["cert.pem"]
        csr, extfile = folder / f"{who}.csr", folder / f"{who}.ext"
        extfile.write_text(ext + "\n")
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", str(key), "-out", str(csr))
        _run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(f["ca.pem"]), "-CAkey", str(f["ca-key.pem"]),
             "-CAcreateserial", "-days", "2", "-extfile", str(extfile), "-out", str(cert))
    return f


class NetEngine(TestEngine):
    """An extra dockerd (tests/faults/testengine.py's, in its own namespace) reachable from the
    host over a veth pair with tcp+TLS, with ``live-restore`` (its containers outlive a daemon
    restart, as a remote machine's do when only its engine goes away). ``url``/``certs`` for
    crowd.toml (``toml()``); ``stop()`` / ``start()``; ``teardown()`` removes everything."""

    __test__ = False

    def __init__(self, name: str, index: int, root: Path, live_restore: bool = True):
        self.name, self.index, self.root = name, index, root
        self.certs: dict[str, Path] = make_certs(root / "certs", self.ip)
        self.sshd: subprocess.Popen | None = None
        super().__init__(root / "engine", name, config={"live-restore": live_restore}, args=(
            "-H", f"tcp://{self.ip}:{PORT}", "--tlsverify", "--tlscacert", str(self.certs["ca.pem"]),
            "--tlscert", str(self.certs["server.pem"]), "--tlskey", str(self.certs["server-key.pem"])))

    @property
    def host_ip(self) -> str:
        return f"10.251.{self.index}.1"

    @property
    def ip(self) -> str:
        return f"10.251.{self.index}.2"

    @property
    def tcp_url(self) -> str:
        return f"tcp://{self.ip}:{PORT}"

    @property
    def socket(self) -> Path:
        return self.sock

    def toml(self, engine: str, labels: tuple[str, ...] = ()) -> str:
        lines = [f"[engines.{engine}]", f'url = "{self.tcp_url}"', f'tls_ca = "{self.certs["ca.pem"]}"',
                 f'tls_cert = "{self.certs["cert.pem"]}"', f'tls_key = "{self.certs["key.pem"]}"']
        if labels:
            lines.append("labels = [" + ", ".join(f'"{x}"' for x in labels) + "]")
        return "\n".join(lines) + "\n"

    def local_client(self):
        """A client over the engine's unix socket (for the test's own looks and cleanup)."""
        return self.client()

    # ---- life

    def setup(self) -> None:
        """The namespace and the veth pair (the engine's address must exist before it binds)."""
        veth_h, veth_n = f"{self.name}h", f"{self.name}n"
        _run("ip", "netns", "add", self.name)
        self._ns_made = True
        _run("ip", "link", "add", veth_h, "type", "veth", "peer", "name", veth_n)
        _run("ip", "link", "set", veth_n, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", veth_h)
        _run("ip", "link", "set", veth_h, "up")
        _run("ip", "-n", self.name, "addr", "add", f"{self.ip}/30", "dev", veth_n)
        _run("ip", "-n", self.name, "link", "set", veth_n, "up")
        _run("ip", "-n", self.name, "link", "set", "lo", "up")
        self.start()

    # ---- ssh:// (a real sshd in the engine's namespace; docker-py runs `docker system dial-stdio`)

    def start_sshd(self, home: Path, port: int = 2222) -> str:
        """Start sshd beside the engine; ``home`` becomes the client's ~ (its key and
        known_hosts). Returns the engine's ssh:// URL."""
        folder = self.root / "ssh"
        folder.mkdir(exist_ok=True)
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key"))
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / "id_ed25519"))
        (folder / "authorized_keys").write_text((ssh_dir / "id_ed25519.pub").read_text())
        host_pub = (folder / "host_key.pub").read_text().split()
        (ssh_dir / "known_hosts").write_text(f"[{self.ip}]:{port} {host_pub[0]} {host_pub[1]}\n")
        (folder / "sshd_config").write_text("\n".join([
            f"ListenAddress {self.ip}:{port}", f"HostKey {folder / 'host_key'}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UsePAM no",
            "StrictModes no", f"PidFile {folder / 'sshd.pid'}", f"SetEnv DOCKER_HOST=unix://{self.socket}",
        ]) + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        log = open(folder / "sshd.log", "ab")
        self.sshd = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{self.name}", "/usr/sbin/sshd", "-D", "-e",
             "-f", str(folder / "sshd_config")], stdout=log, stderr=log, start_new_session=True)
        log.close()
        import socket

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.ip, port), timeout=1).close()
                return f"ssh://root@{self.ip}:{port}"
            except OSError:
                if self.sshd.poll() is not None:
                    raise RuntimeError(f"sshd exited: {(folder / 'sshd.log').read_text()[-2000:]}")
                time.sleep(0.1)
        raise RuntimeError("sshd did not listen in 20 s")

    def teardown(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                try:
                    client = self.local_client()
                    for c in client.containers.list(all=True):
                        c.remove(force=True)
                    client.close()
                except Exception:
                    pass
            if self.sshd is not None and self.sshd.poll() is None:
                self.sshd.terminate()
                try:
                    self.sshd.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.sshd.kill()
            self.stop()
            for pid in _pids_under(self.root):  # shims of live-restored containers, by pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            _run("ip", "link", "del", f"{self.name}h", check=False)
        finally:
            self.destroy()  # the namespace, mounts under the engine's folders, the folders
            shutil.rmtree(self.root, ignore_errors=True)


def _pids_under(root: Path) -> list[int]:
    """Processes whose command line names ``root`` (the engine's shims and containerd)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if str(root) in cmdline:
            pids.append(int(entry.name))
    return pids


def start_engine(index: int, live_restore: bool = True) -> TestEngine:
    """An engine named ``ce<pid><index>``-ish (interface names stay under 15 characters)."""
    name = f"ce{os.getpid() % 100000}{index}"
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    engine = NetEngine(name=name, index=100 + (os.getpid() % 50) * 3 + index, root=root,
                       live_restore=live_restore)  # (Swarm refuses live-restore)
    try:
        engine.setup()
    except BaseException:
        engine.teardown()
        raise
    return engine


def start_swarm() -> tuple[NetEngine, NetEngine]:
    """Two engines joined in a Swarm over a veth pair of their own (10.252.N.1 manager,
    10.252.N.2 worker); the host reaches each over its own link, as for one engine."""
    a = start_engine(1, live_restore=False)
    try:
        b = start_engine(2, live_restore=False)
    except BaseException:
        a.teardown()
        raise
    try:
        n = a.index
        _run("ip", "link", "add", f"{a.name}s", "type", "veth", "peer", "name", f"{b.name}s")
        for engine, last in ((a, 1), (b, 2)):
            _run("ip", "link", "set", f"{engine.name}s", "netns", engine.name)
            _run("ip", "-n", engine.name, "addr", "add", f"10.252.{n}.{last}/30", "dev", f"{engine.name}s")
            _run("ip", "-n", engine.name, "link", "set", f"{engine.name}s", "up")
        manager, worker = a.local_client(), b.local_client()
        try:
            manager.swarm.init(advertise_addr=f"10.252.{n}.1", listen_addr=f"10.252.{n}.1:2377")
            manager.swarm.reload()
            token = manager.swarm.attrs["JoinTokens"]["Worker"]
            worker.swarm.join(remote_addrs=[f"10.252.{n}.1:2377"], join_token=token,
                              advertise_addr=f"10.252.{n}.2", listen_addr=f"10.252.{n}.2:2377")
        finally:
            manager.close()
            worker.close()
    except BaseException:
        b.teardown()
        a.teardown()
        raise
    return a, b
