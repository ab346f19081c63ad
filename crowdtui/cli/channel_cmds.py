"""CLI of the network channels: ``crowdtui channel telegram | email | matrix``.

Each runs in the foreground beside ``crowdtui serve`` (dispatch's URL and register key
from ``.crowd/run/serve.json``, or ``--dispatch`` / ``--register-key``), takes its
credentials from ``crowdtui secret`` and keeps its cursor in
``.crowd/channels/<name>/state.json``. SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

from crowdtui.cli.common import workspace_of
from crowdtui.errors import CrowdError


def add_network_channels(cs) -> None:
    """Add the network channels' subcommands to ``crowdtui channel``'s subparsers ``cs``."""
    c = cs.add_parser("telegram", help="a Telegram bot as a channel (Bot API, long polling)",
                      description="Registers with this workspace's running serve as channel NAME, owning chats "
                      "'NAME:<chat id>'. The bot token is the secret TELEGRAM_BOT_TOKEN "
                      "(`crowdtui secret set TELEGRAM_BOT_TOKEN`).")
    _common(c, "telegram")
    c.add_argument("--api-url", default="https://api.telegram.org",
                   help="Bot API base URL (a local Bot API server; default https://api.telegram.org)")
    c.add_argument("--token-secret", default="TELEGRAM_BOT_TOKEN", help="secret holding the bot token")
    c.add_argument("--poll-timeout", type=int, default=25, help="long-poll seconds per getUpdates (default 25)")
    c.set_defaults(func=cmd_channel_telegram)

    c = cs.add_parser("email", help="a mailbox as a channel (IMAP IDLE in, SMTP out)",
                      description="Registers with this workspace's running serve as channel NAME; each mail "
                      "thread is a chat 'NAME:<id>'. The password is the secret EMAIL_PASSWORD "
                      "(`crowdtui secret set EMAIL_PASSWORD`).")
    _common(c, "email")
    c.add_argument("--address", required=True, help="the mailbox's address (also the login unless --user)")
    c.add_argument("--user", default=None, help="IMAP/SMTP login (default: --address)")
    c.add_argument("--imap", required=True, metavar="HOST[:PORT]", help="IMAP server (port default 993, or 143 "
                   "with --imap-tls starttls/none)")
    c.add_argument("--smtp", required=True, metavar="HOST[:PORT]", help="SMTP submission server (port default 587)")
    c.add_argument("--imap-tls", choices=("ssl", "starttls", "none"), default="ssl")
    c.add_argument("--smtp-tls", choices=("ssl", "starttls", "none"), default="starttls")
    c.add_argument("--password-secret", default="EMAIL_PASSWORD", help="secret holding the password")
    c.add_argument("--smtp-password-secret", default=None, help="secret for SMTP if it differs")
    c.add_argument("--idle", type=float, default=300, help="seconds an IDLE waits before asking again (default 300)")
    c.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024,
                   help="larger mails are refused without being fetched (default 10 MiB)")
    c.set_defaults(func=cmd_channel_email)

    c = cs.add_parser("matrix", help="a Matrix account as a channel (rooms are chats; bridges bring other networks)",
                      description="Registers with this workspace's running serve as channel NAME; each room the "
                      "account is in (invite it) is a chat 'NAME:<room id>', a thread 'NAME:<room id>|<root>'. "
                      "The password is the secret MATRIX_PASSWORD (`crowdtui secret set MATRIX_PASSWORD`).")
    _common(c, "matrix")
    c.add_argument("--homeserver", required=True, metavar="URL", help="homeserver URL, e.g. https://matrix.example.org")
    c.add_argument("--user", required=True, help="the account, e.g. @crowd:example.org")
    c.add_argument("--password-secret", default="MATRIX_PASSWORD", help="secret holding the password")
    c.add_argument("--poll-timeout", type=float, default=30, help="long-poll seconds per /sync (default 30)")
    c.set_defaults(func=cmd_channel_matrix)


def _common(c, default_name: str) -> None:
    c.add_argument("--name", default=default_name, help=f"channel name and chat prefix (default {default_name})")
    c.add_argument("--dispatch", default=None, metavar="URL", help="dispatch URL (default: from .crowd/run/serve.json)")
    c.add_argument("--register-key", default=None, help="dispatch's register key (default: from serve.json)")
    c.add_argument("--max-backoff", type=float, default=30.0, help="longest wait between reconnects (s)")


async def reveal(ws, *names: str) -> dict[str, str]:
    from crowdtui.secrets import Vault

    store = await ws.open_store()
    try:
        return await Vault.open(ws, store, create_key=False).reveal(list(names))
    finally:
        await store.close()


def channel_kwargs(args) -> dict:
    from crowdtui.dispatch.serve import read_info

    ws = workspace_of(args)
    info = {} if (args.dispatch and args.register_key) else (read_info(ws) or {})
    url = args.dispatch or info.get("url")
    key = args.register_key or info.get("register_key")
    if not url or not key:
        raise CrowdError("no crowdtui serve runs for this workspace (no .crowd/run/serve.json); start one with "
                         "`crowdtui serve`, or give --dispatch URL and --register-key")
    return {"name": args.name, "dispatch_url": url, "register_key": key, "max_backoff": args.max_backoff,
            "state_path": ws.crowd_dir / "channels" / args.name / "state.json",
            "locate": None if (args.dispatch and args.register_key) else (lambda: read_info(ws))}


async def run_channel(channel, json_mode: bool = False) -> int:
    """Start ``channel``, serve until SIGTERM/SIGINT, deregister. With ``--json``, one
    ``channel_ready`` line on stdout once it is registered (docs/cli-json.md)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, channel.stopping.set)
    await channel.start()
    if json_mode:
        print(json.dumps({"event": "ready", "channel": channel.name, "platform": channel.platform,
                          "dispatch": channel.dispatch_url, "pid": os.getpid()}), flush=True)
    task = asyncio.create_task(channel.run())
    task.add_done_callback(lambda _t: channel.stopping.set())  # a fault it cannot mend ends it
    try:
        await channel.stopping.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await channel.disconnect()
        finally:
            await channel.close()
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()
    return 0


def _host_port(value: str, default: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    if port and not port.isdigit():
        raise CrowdError(f"bad server {value!r}: use HOST or HOST:PORT")
    return (host or value), int(port) if port else default


async def cmd_channel_email(args) -> int:
    from crowdtui.channels.mail import EmailChannel

    ws = workspace_of(args)
    imap_host, imap_port = _host_port(args.imap, 993 if args.imap_tls == "ssl" else 143)
    smtp_host, smtp_port = _host_port(args.smtp, 465 if args.smtp_tls == "ssl" else 587)
    names = [args.password_secret] + ([args.smtp_password_secret] if args.smtp_password_secret else [])
    found = await reveal(ws, *names)
    return await run_channel(EmailChannel(
        address=args.address, user=args.user, password=found[args.password_secret],
        smtp_password=found.get(args.smtp_password_secret or ""), imap_host=imap_host, imap_port=imap_port,
        smtp_host=smtp_host, smtp_port=smtp_port, imap_tls=args.imap_tls, smtp_tls=args.smtp_tls,
        idle_seconds=args.idle, max_bytes=args.max_bytes, **channel_kwargs(args)), args.json)


async def cmd_channel_matrix(args) -> int:
    from crowdtui.channels.matrix import MatrixChannel

    ws = workspace_of(args)
    pw = (await reveal(ws, args.password_secret))[args.password_secret]
    return await run_channel(MatrixChannel(homeserver=args.homeserver, user=args.user, password=pw,
                                           poll_timeout=args.poll_timeout, **channel_kwargs(args)), args.json)


async def cmd_channel_telegram(args) -> int:
    from crowdtui.channels.telegram import TelegramChannel

    ws = workspace_of(args)
    token = (await reveal(ws, args.token_secret))[args.token_secret]
    return await run_channel(TelegramChannel(bot_token=token, api_url=args.api_url, poll_timeout=args.poll_timeout,
                                             **channel_kwargs(args)), args.json)
