"""``crowdtui channel email``: a mailbox as a channel. IMAP in (aioimaplib, IDLE), SMTP out
(aiosmtplib).

Inbound: after each wake-up (IDLE push, or the IDLE timeout) the channel asks for UIDs
above the last one dispatch acknowledged (the cursor: UIDVALIDITY and UID, saved after
each message), fetches each without marking it seen, and delivers it. A new
UIDVALIDITY starts over from the first UID; dispatch drops what it has by Message-ID.

Threads: a mail's thread root is the first id of References, else In-Reply-To, else its
own Message-ID. The chat is ``email:<hash of root and sender address>`` -- keyed by the
sender too, so a forged References header can only ever join the forger's own thread.
The channel remembers per chat whom to answer (the From address, never Reply-To),
the subject and the ids to cite, so the agent's reply goes out with In-Reply-To and
References and lands in the writer's thread.

An HTML-only mail is read as its text (markup, scripts and styles dropped).

Refused (logged, no bounce, so no backscatter to forged senders): mails over
``max_bytes`` (not even fetched), without exactly one valid From address, from the
channel's own address (loops), or whose text is over the protocol's limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from crowdtui.channels.base import NetMessage, NetworkChannel

MAX_BYTES = 10 * 1024 * 1024
MAX_THREADS = 2000
MAX_REFS = 20
_ID = re.compile(r"<([^<>\s]{1,250})>")
_ADDR = re.compile(r"[^@\s<>\"(),;:\\\[\]]{1,64}@[A-Za-z0-9.-]{1,190}")


def _ids(value) -> list[str]:
    return _ID.findall(str(value or ""))[:50]


class _Text(HTMLParser):
    SKIP = {"script", "style", "head", "title"}
    BREAK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(data)


def html_text(html: str) -> str:
    """The readable text of an HTML-only mail (no markup, no scripts or styles)."""
    p = _Text()
    p.feed(html)
    p.close()
    lines = (" ".join(line.split()) for line in "".join(p.out).splitlines())
    return "\n".join(line for line in lines if line)


def thread_chat(root: str, sender: str) -> str:
    return hashlib.sha256(f"{root}\0{sender}".encode()).hexdigest()[:20]


def parse_mail(raw: bytes, *, uid: str, own: str) -> tuple[NetMessage, dict] | str:
    """A message and its thread's memory, or the reason to refuse it."""
    try:
        mail = BytesParser(policy=policy.default).parsebytes(raw)
        froms = getaddresses([str(h) for h in mail.get_all("From", [])])
    except Exception as exc:  # the parser is lenient; a header it cannot read is the sender's fault
        return f"unreadable mail ({type(exc).__name__})"
    if len(froms) != 1 or not _ADDR.fullmatch(froms[0][1] or ""):
        return "mail without exactly one valid From address"
    name, sender = froms[0][0], froms[0][1].lower()
    if sender == own.lower():
        return "mail from the channel's own address"
    mids = _ids(mail.get("Message-ID"))
    mid = mids[0] if mids else f"uid-{uid}"
    refs = _ids(mail.get("References"))
    parent = (_ids(mail.get("In-Reply-To")) or [None])[0]
    root = refs[0] if refs else (parent or mid)
    try:
        part = mail.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
        if part is not None and part.get_content_subtype() == "html":
            text = html_text(text)
    except Exception:
        text = ""
    atts = []
    for i, att in enumerate(mail.iter_attachments()):
        if i >= 20:
            break
        payload = att.get_payload(decode=True) or b""
        a = {"url": f"imap:{uid}/{i + 1}", "type": att.get_content_type(), "size": len(payload)}
        if att.get_filename():
            a["name"] = str(att.get_filename())
        atts.append(a)
    subject = str(mail.get("Subject", "") or "")
    if subject:
        text = f"[{subject}]\n{text}" if text.strip() else f"[{subject}]"
    try:
        when = parsedate_to_datetime(str(mail.get("Date"))).strftime("%Y-%m-%dT%H:%M:%SZ")
    except Exception:
        when = None
    chat = thread_chat(root, sender)
    memory = {"to": sender, "subject": subject[:300], "refs": (refs + [mid])[-MAX_REFS:], "last": mid}
    return NetMessage(id=mid, chat=chat, text=text.strip() if text.strip() else text, sender=sender,
                      sender_name=name or None, room=own.lower(), time=when, reply_to=parent,
                      attachments=tuple(atts)), memory


class EmailChannel(NetworkChannel):
    platform = "email"
    libraries = (("aioimaplib", "aioimaplib"), ("aiosmtplib", "aiosmtplib"))

    def __init__(self, *, address: str, password: str, imap_host: str, imap_port: int = 993,
                 smtp_host: str, smtp_port: int = 587, user: str | None = None, smtp_password: str | None = None,
                 imap_tls: str = "ssl", smtp_tls: str = "starttls", idle_seconds: float = 300,
                 max_bytes: int = MAX_BYTES, **kw) -> None:
        super().__init__(**kw)
        self.address = address
        self.user = user or address
        self.password = password
        self.smtp_password = smtp_password or password
        self.imap_host, self.imap_port, self.imap_tls = imap_host, imap_port, imap_tls
        self.smtp_host, self.smtp_port, self.smtp_tls = smtp_host, smtp_port, smtp_tls
        self.idle_seconds = idle_seconds
        self.max_bytes = max_bytes
        self.imap = None
        self.uidvalidity: int | None = None
        self._lost = asyncio.Event()

    # --- IMAP in ---------------------------------------------------------------------

    async def connect(self) -> None:
        import aioimaplib

        lost = self._lost = asyncio.Event()
        ssl_context = ssl.create_default_context() if self.imap_tls == "ssl" else None
        imap = aioimaplib.IMAP4(host=self.imap_host, port=self.imap_port, timeout=30, ssl_context=ssl_context,
                                conn_lost_cb=lambda exc: lost.set())  # (IMAP4_SSL takes no such callback)
        self.imap = imap
        await imap.wait_hello_from_server()
        if self.imap_tls == "starttls":
            await imap.starttls()
        r = await imap.login(self.user, self.password)
        if r.result != "OK":
            raise PermissionError(f"IMAP login as {self.user} refused: {_text(r.lines)}")
        r = await imap.select("INBOX")
        if r.result != "OK":
            raise ConnectionError(f"IMAP SELECT INBOX failed: {_text(r.lines)}")
        m = re.search(rb"UIDVALIDITY (\d+)", b" ".join(bytes(x) for x in r.lines))
        self.uidvalidity = int(m.group(1)) if m else 0
        self.status(f"email: {self.user} at {self.imap_host}:{self.imap_port}, INBOX selected")

    async def disconnect(self) -> None:
        imap, self.imap = self.imap, None
        if imap is not None:
            try:
                if imap.has_pending_idle():
                    imap.idle_done()
                await asyncio.wait_for(imap.logout(), 5)
            except Exception:
                pass

    def _last_uid(self) -> int:
        c = self.state.cursor
        if isinstance(c, dict) and c.get("uidvalidity") == self.uidvalidity and isinstance(c.get("uid"), int):
            return c["uid"]
        return 0

    async def pump(self) -> None:
        last = self._last_uid()
        r = await self.imap.uid_search(f"UID {last + 1}:*")
        if r.result != "OK":
            raise ConnectionError(f"IMAP UID SEARCH failed: {_text(r.lines)}")
        uids = sorted(int(u) for u in b" ".join(bytes(x) for x in r.lines[:-1]).split() if u.isdigit())
        for uid in (u for u in uids if u > last):
            await self._take(uid)
            self.state.advance({"uidvalidity": self.uidvalidity, "uid": uid})
        await self._idle()

    async def _take(self, uid: int) -> None:
        r = await self.imap.uid("fetch", str(uid), "(RFC822.SIZE)")
        m = re.search(rb"RFC822\.SIZE (\d+)", b" ".join(bytes(x) for x in r.lines))
        size = int(m.group(1)) if m else 0
        ref = f"{self.uidvalidity}-{uid}"
        if size > self.max_bytes:
            await self._refuse(NetMessage(id=f"uid-{ref}", chat="?", text=""),
                               f"mail is {size} bytes; the limit is {self.max_bytes}")
            return
        r = await self.imap.uid("fetch", str(uid), "(BODY.PEEK[])")
        raw = next((bytes(x) for x in r.lines if isinstance(x, bytearray)), None)
        if r.result != "OK" or raw is None:
            raise ConnectionError(f"IMAP FETCH of UID {uid} failed: {_text(r.lines)}")
        try:
            got = parse_mail(raw, uid=ref, own=self.address)
        except Exception as exc:  # a poison mail is refused alone, never stops the mailbox
            got = f"unreadable mail ({type(exc).__name__})"
        if isinstance(got, str):
            await self._refuse(NetMessage(id=f"uid-{ref}", chat="?", text=""), got)
            return
        msg, memory = got
        threads = self.state.memory.setdefault("threads", {})
        if await self.deliver(msg):
            old = threads.pop(msg.chat, None) or {}
            refs = list(dict.fromkeys((old.get("refs") or []) + memory["refs"]))[-MAX_REFS:]
            threads[msg.chat] = {**memory, "refs": refs, "subject": old.get("subject") or memory["subject"]}
            while len(threads) > MAX_THREADS:
                threads.pop(next(iter(threads)))

    async def _idle(self) -> None:
        """Wait for the server to push news (or ``idle_seconds``); a dropped connection or a
        BYE raises at once, so the channel reconnects instead of waiting out the IDLE."""
        idle = await self.imap.idle_start(timeout=self.idle_seconds)
        push = asyncio.ensure_future(self.imap.wait_server_push(timeout=self.idle_seconds))
        lost = asyncio.ensure_future(self._lost.wait())
        await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
        for t in (push, lost):
            t.cancel()
        news = push.result() if push.done() and not push.cancelled() and push.exception() is None else []
        if lost.done() and not lost.cancelled() or any(b"BYE" in bytes(x) for x in news if isinstance(x, (bytes, bytearray))):
            raise ConnectionError("the IMAP server closed the connection")
        if self.imap.has_pending_idle():
            self.imap.idle_done()
        await asyncio.wait_for(idle, 10)

    # --- SMTP out --------------------------------------------------------------------

    async def send_part(self, chat: str, text: str, body: dict, index: int) -> None:
        import aiosmtplib

        thread = self.state.memory.get("threads", {}).get(chat)
        if thread is None:
            raise LookupError(f"no mail thread {chat!r} known to this channel (its state was reset?)")
        agent = str(body.get("from") or "crowd")
        domain = self.address.rsplit("@", 1)[1]
        local = self.address.rsplit("@", 1)[0]
        mail = EmailMessage(policy=policy.SMTP)
        mail["From"] = Address(display_name=f"{agent} (crowd)", username=local, domain=domain)
        mail["To"] = thread["to"]
        subject = thread.get("subject") or "(no subject)"
        mail["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        mail["Message-ID"] = f"<crowd-{body.get('id')}-{chat}@{domain}>"  # the same on a resend
        mail["In-Reply-To"] = f"<{thread['last']}>"
        mail["References"] = " ".join(f"<{r}>" for r in thread["refs"])
        mail["Date"] = format_datetime(datetime.now().astimezone())
        mail.set_content(text)
        await aiosmtplib.send(mail, hostname=self.smtp_host, port=self.smtp_port, username=self.user,
                              password=self.smtp_password, use_tls=self.smtp_tls == "ssl",
                              start_tls=True if self.smtp_tls == "starttls" else False, timeout=30)
        own = mail["Message-ID"][1:-1]
        thread["last"] = own
        thread["refs"] = (thread["refs"] + [own])[-MAX_REFS:]


def _text(lines) -> str:
    return " ".join(bytes(x).decode("utf-8", "replace") for x in lines)[:200]
