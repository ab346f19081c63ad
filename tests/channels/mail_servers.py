"""Real mail servers on 127.0.0.1 for the email channel's tests.

- IMAP: Debian's Dovecot (``dovecot-imapd``, installed by scripts/setup.sh), started in
  the foreground with a configuration of its own (plain text login on 127.0.0.1, users
  from a passwd file, Maildir homes owned by ``nobody``) -- nothing of the system's
  Dovecot is used or touched.
- SMTP: aiosmtpd (a real SMTP server, with AUTH) whose handler hands each mail to
  Dovecot's own delivery agent (``dovecot-lda``), so what is sent to a user appears in
  that user's INBOX and wakes an IMAP IDLE on it, as on a real mail system.

Users: ``bot@example.test`` (the channel's mailbox) and ``ann@example.test`` /
``mallory@example.test`` (people writing to it); each password is ``pw-<name>``.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

LDA = "/usr/lib/dovecot/dovecot-lda"
USERS = ("bot@example.test", "ann@example.test", "mallory@example.test")
NOBODY = 65534


def password(user: str) -> str:
    return "pw-" + user.split("@")[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailServers:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="crowd-mail-"))
        self.imap_port = _free_port()
        self.smtp_port = _free_port()
        self.conf = self.dir / "dovecot.conf"
        self.dovecot: subprocess.Popen | None = None
        self.smtp = None
        self.delivered: list[tuple[str, str]] = []  # (sender, recipient) handed to dovecot-lda

    def _configure(self) -> None:
        os.chmod(self.dir, 0o755)
        home = self.dir / "home"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        (self.dir / "passwd").write_text("".join(f"{u}:{{PLAIN}}{password(u)}\n" for u in USERS))
        d = self.dir
        self.conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={NOBODY} gid={NOBODY} home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")

    async def start(self) -> "MailServers":
        if not shutil.which("dovecot") or not os.path.exists(LDA):
            raise AssertionError("Dovecot is not installed; run `make setup` (it installs dovecot-imapd)")
        self._configure()
        await self.start_imap()
        await asyncio.to_thread(self._start_smtp)
        return self

    async def start_imap(self) -> None:
        self.dovecot = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        await self._wait_port(self.imap_port, "dovecot")

    async def stop_imap(self) -> None:
        if self.dovecot is not None and self.dovecot.poll() is None:
            self.dovecot.terminate()
            try:
                await asyncio.to_thread(self.dovecot.wait, 20)
            except subprocess.TimeoutExpired:
                self.dovecot.kill()
                await asyncio.to_thread(self.dovecot.wait, 10)
        self.dovecot = None

    async def _wait_port(self, port: int, what: str) -> None:
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                if self.dovecot is not None and self.dovecot.poll() is not None:
                    break
                await asyncio.sleep(0.05)
        log = (self.dir / "dovecot.log").read_text() if (self.dir / "dovecot.log").exists() else ""
        raise AssertionError(f"{what} did not listen on 127.0.0.1:{port}: {log[-2000:]}")

    def _start_smtp(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        servers = self

        class Deliver:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address.lower() not in USERS:
                    return "550 5.1.1 no such user here"
                envelope.rcpt_tos.append(address.lower())
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                for rcpt in envelope.rcpt_tos:
                    proc = await asyncio.create_subprocess_exec(
                        LDA, "-c", str(servers.conf), "-d", rcpt, "-f", envelope.mail_from or "",
                        stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                    _, err = await proc.communicate(envelope.original_content)
                    if proc.returncode != 0:
                        return f"451 4.3.0 delivery failed: {err.decode()[:100]}"
                    servers.delivered.append((envelope.mail_from, rcpt))
                return "250 OK delivered"

        def authenticate(server, session, envelope, mechanism, auth_data):
            user = auth_data.login.decode() if isinstance(auth_data.login, bytes) else str(auth_data.login)
            pw = auth_data.password.decode() if isinstance(auth_data.password, bytes) else str(auth_data.password)
            return AuthResult(success=user in USERS and pw == password(user))

        self.smtp = Controller(Deliver(), hostname="127.0.0.1", port=self.smtp_port, authenticator=authenticate,
                               auth_require_tls=False, auth_required=True)
        self.smtp.start()

    async def stop_smtp(self) -> None:
        if self.smtp is not None:
            await asyncio.to_thread(self.smtp.stop)
            self.smtp = None

    async def start_smtp(self) -> None:
        await asyncio.to_thread(self._start_smtp)

    async def stop(self) -> None:
        await self.stop_smtp()
        await self.stop_imap()
        shutil.rmtree(self.dir, ignore_errors=True)

    async def send(self, mail, user: str = "ann@example.test") -> None:
        """``user`` submits ``mail`` (an EmailMessage) through the SMTP server."""
        import aiosmtplib

        await aiosmtplib.send(mail, hostname="127.0.0.1", port=self.smtp_port, username=user,
                              password=password(user), start_tls=False, timeout=20)

    async def inbox(self, user: str) -> list[bytes]:
        """Every mail in ``user``'s INBOX, read over IMAP."""
        def read() -> list[bytes]:
            imap = imaplib.IMAP4("127.0.0.1", self.imap_port)
            try:
                imap.login(user, password(user))
                imap.select("INBOX", readonly=True)
                _, data = imap.uid("SEARCH", "ALL")
                out = []
                for uid in data[0].split():
                    _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
                    out.append(parts[0][1])
                return out
            finally:
                imap.logout()

        return await asyncio.to_thread(read)
