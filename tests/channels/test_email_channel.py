"""`crowdtui channel email` as its own process against real mail servers on 127.0.0.1
(Dovecot for IMAP with IDLE, aiosmtpd for SMTP delivering through dovecot-lda; see
tests/channels/mail_servers.py), dispatch real."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from tests.channels.conftest import rows as rows_of
from tests.channels.conftest import set_secret, wait_for
from tests.channels.mail_servers import MailServers, password

BOT = "bot@example.test"
ANN = "ann@example.test"
pytestmark = [pytest.mark.timeout(120),
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]  # 127.0.0.1 only


@pytest.fixture
async def mail():
    servers = await MailServers().start()
    yield servers
    await servers.stop()



async def start_email(crowd, channels, mail, *extra: str):
    await set_secret(crowd, "EMAIL_PASSWORD", password(BOT))
    return channels(crowd, "email", "--address", BOT, "--imap", f"127.0.0.1:{mail.imap_port}",
                    "--smtp", f"127.0.0.1:{mail.smtp_port}", "--imap-tls", "none", "--smtp-tls", "none",
                    "--idle", "60", *extra)  # woken by IDLE pushes, not the timeout


def letter(text: str, *, mid: str, subject: str = "Plan", frm: str = ANN, **headers) -> EmailMessage:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = BOT
    m["Subject"] = subject
    m["Message-ID"] = f"<{mid}>"
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(text)
    return m



def parsed(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


async def test_a_mail_reaches_the_agent_and_its_reply_the_thread(crowd, channels, mail):
    ch = await start_email(crowd, channels, mail)
    await mail.send(letter("Can you look at the plan?", mid="m1@example.test"))
    inbox = await wait_for(lambda: crowd.store.inbox("lead"), 30, "the mail in lead's inbox", ch)
    assert "Can you look at the plan?" in inbox[0].body
    [row] = await rows(crowd)
    assert (row.sender, row.msg_id, row.room, row.agent) == (ANN, "m1@example.test", BOT, "lead")
    assert row.text == "[Plan]\nCan you look at the plan?" and row.chat.startswith("email:")

    await crowd.dispatch.reply("lead", row.chat, "Looked: fine.", reply_to=row.msg_id)
    got = await wait_for(lambda: mail.inbox(ANN), 30, "the reply in Ann's mailbox", ch)
    reply = parsed(got[0])
    assert reply["Subject"] == "Re: Plan" and reply["In-Reply-To"] == "<m1@example.test>"
    assert "<m1@example.test>" in reply["References"] and BOT in reply["From"] and "lead" in reply["From"]
    assert reply.get_content().strip() == "Looked: fine."

    # Ann answers in the thread: the same chat
    await mail.send(letter("Thanks!", mid="m2@example.test", subject="Re: Plan", In_Reply_To=reply["Message-ID"],
                           References=f"<m1@example.test> {reply['Message-ID']}"))

    async def two():
        return len(await rows(crowd)) == 2

    await wait_for(two, 30, "Ann's answer", ch)
    first, second = await rows(crowd)
    assert second.chat == first.chat and second.reply_to == reply["Message-ID"].strip("<>")


async def test_hostile_mail_is_refused_or_inert_and_never_doubled(crowd, channels, mail):
    ch = await start_email(crowd, channels, mail, "--max-bytes", "300000")
    ok = letter("bell\x07 esc\x1b[2J\u202e", mid="h1@example.test")
    ok.replace_header("From", "\"lead\x1b[31m\" <ann@example.test>")
    await mail.send(ok)
    await mail.send(ok)  # replayed: the same Message-ID again
    await mail.send(letter("two senders", mid="h2@example.test", frm="ann@example.test, lead@example.test"))
    await mail.send(letter("looping", mid="h3@example.test", frm=BOT))
    await mail.send(letter("y" * 40_000, mid="h4@example.test"))
    big = letter("see attached", mid="h4b@example.test")
    big.add_attachment(b"\0" * 400_000, maintype="application", subtype="octet-stream", filename="big.bin")
    await mail.send(big)  # over --max-bytes: not even fetched
    # Mallory cites Ann's thread: she gets a thread of her own, never Ann's chat
    await mail.send(letter("let me in", mid="h5@example.test", frm="mallory@example.test",
                           References="<h1@example.test>"), user="mallory@example.test")
    html = letter("", mid="h5b@example.test")
    html.set_content("<html><head><style>p{}</style></head><body><p>Hi <b>there</b></p>"
                     "<script>alert(1)</script><p>second &amp; last</p></body></html>", subtype="html")
    await mail.send(html)
    await mail.send(letter("last one", mid="h6@example.test"))

    async def last():
        return any(r.msg_id == "h6@example.test" for r in await rows(crowd))

    await wait_for(last, 40, "the last mail stored", ch)
    got = await rows(crowd)
    assert [r.msg_id for r in got] == ["h1@example.test", "h5@example.test", "h5b@example.test", "h6@example.test"]
    assert got[2].text == "[Plan]\nHi there\nsecond & last"  # HTML-only: its text
    assert got[0].text == "[Plan]\nbell\\x07 esc\\x1b[2J\\u202e"
    assert got[0].sender_name == "lead\\x1b[31m" and got[0].sender == ANN
    assert got[1].sender == "mallory@example.test" and got[1].chat != got[0].chat
    log = ch.stderr
    assert "without exactly one valid From address" in log and "from the channel's own address" in log
    assert "bytes; the limit is 32768" in log and "bytes; the limit is 300000" in log


async def test_restart_mid_stream_and_smtp_outage_lose_and_double_nothing(crowd, channels, mail):
    ch = await start_email(crowd, channels, mail)
    for i in range(12):
        await mail.send(letter(f"m{i}", mid=f"r{i}@example.test", subject=f"s{i}"))

    async def some():
        return len(await rows(crowd)) >= 3

    await wait_for(some, 30, "the first mails", ch)
    await ch.kill()  # SIGKILL mid-stream
    for i in range(12, 16):
        await mail.send(letter(f"m{i}", mid=f"r{i}@example.test", subject=f"s{i}"))
    ch2 = await start_email(crowd, channels, mail)

    async def all_in():
        return len(await rows(crowd)) >= 16

    await wait_for(all_in, 40, "all 16 mails", ch2)
    got = await rows(crowd)
    assert [r.text for r in got] == [f"[s{i}]\nm{i}" for i in range(16)]

    # the IMAP server goes away and comes back: the channel reconnects with backoff
    await mail.stop_imap()
    await wait_for(lambda: "reconnecting in" in ch2.stderr, 30, "a reconnect attempt", ch2)
    await mail.start_imap()
    await mail.send(letter("after the IMAP outage", mid="r99@example.test", subject="s99"))

    async def after_outage():
        return any(r.msg_id == "r99@example.test" for r in await rows(crowd))

    await wait_for(after_outage, 40, "the mail after the IMAP outage", ch2)
    got = await rows(crowd)
    assert len(got) == 17

    # SMTP down while the agent answers: dispatch retries, the mail goes out once
    await mail.stop_smtp()
    await crowd.dispatch.reply("lead", got[0].chat, "answer after the outage")

    async def tried():
        return "failed" in ch2.stderr

    await wait_for(tried, 30, "a failed SMTP attempt", ch2)
    await mail.start_smtp()
    await wait_for(lambda: mail.inbox(ANN), 40, "the reply after the outage", ch2)
    texts = [parsed(m).get_content().strip() for m in await mail.inbox(ANN)]
    assert texts == ["answer after the outage"]


async def rows(crowd):
    return await rows_of(crowd, 'email')
