"""The operator's commands over the store: messages and events; the helpers they share
with the document commands (:mod:`crowdtui.cli.doc_cmds`).

Every command acts as ``operator``, or as the agent named by the global ``--as NAME``
(which must be a registered agent); events written that way carry
``"by_operator": true`` in their detail. Before each command the workspace roster
(``agents/``) is synced into the registry, so every agent in the roster can be named.
Errors are one line on stderr and a non-zero exit status. Text output shows names,
titles and bodies with control characters made visible (``\\x1b``), never raw.

Commands::

    crowdtui send TO BODY [--priority low|normal|high] [--thread T] [--json]   (BODY - : stdin)
    crowdtui inbox [NAME] [--unread] [--limit N] [--json]
    crowdtui read ID... [--json]                 (prints {"marked": N, "asked": N})
    crowdtui doc ...   (the document commands: see crowdtui.cli.doc_cmds)
    crowdtui events [--json] [-f] [--kind K]... [--after ID] [--limit N]

Every command takes ``--json``; the shapes (message, document, task, event) are in
docs/cli-json.md, the one place they are written down (tests hold the commands to it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from crowdtui.cli.common import completes_agents, emit, inert, print_json, workspace_of
from crowdtui.errors import CrowdError, UsageError

FOLLOW_INTERVAL = 0.5  # seconds between polls of `events -f`


# ---- helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def acting_store(args) -> AsyncIterator[tuple[Any, str]]:
    """The workspace's store with the roster synced, and the acting principal's name."""
    from qms.errors import NotFound
    from qms.names import OPERATOR, validate_name

    ws = workspace_of(args)
    actor = validate_name(getattr(args, "actor", None) or OPERATOR)
    store = await ws.open_store()
    try:
        await _sync_roster(ws, store)
        if actor != OPERATOR:
            if await store.get_agent(actor) is None:
                raise NotFound(
                    f"--as {actor}: no such agent is registered; use a name from the roster "
                    "(`crowdtui ls`) or leave --as out to act as the operator"
                )
            store.event_meta = {"by_operator": True}
        yield store, actor
    finally:
        await store.close()


async def _sync_roster(ws, store) -> None:
    """Register the roster's agents so the operator can address every one of them."""
    try:
        from crowdtui.roster import load_roster, sync_roster
    except ImportError:  # pragma: no cover - the roster module is part of the package
        return
    roster = await asyncio.to_thread(load_roster, ws)
    await sync_roster(store, roster)


def read_text_file(name: str) -> str:
    """Content from a file, or stdin for ``-``; one clear line if it cannot be read."""
    if name == "-":
        data = sys.stdin.buffer.read()
        where = "stdin"
    else:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CrowdError(f"cannot read {inert(name)}: {exc.strerror}; check the path") from exc
        where = inert(name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CrowdError(f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def as_dict(obj: Any, *, content: bool = True) -> dict[str, Any]:
    d = dataclasses.asdict(obj)
    if not content:
        d.pop("content", None)
    return d


def event_line(ev) -> str:
    detail = json.dumps(ev.detail, sort_keys=True, ensure_ascii=False) if ev.detail else ""
    return inert(f"#{ev.id} {when(ev.at)} {ev.actor} {ev.kind} {ev.subject} {detail}".rstrip())


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in inert(text).split("\n"))


# ---- registration ----------------------------------------------------------------------


def register(sub) -> None:
    p = sub.add_parser("send", help="send a message to an agent, the operator, or * (everyone)")
    completes_agents(p.add_argument("to", metavar="TO", help="agent name, operator, or * for every agent"))
    p.add_argument("body", metavar="BODY", help="message text (- reads stdin)")
    p.add_argument("--priority", "-p", choices=("low", "normal", "high"), default="normal")
    p.add_argument("--thread", "-t", default=None, help="thread label to group messages")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("inbox", help="list messages (yours, or NAME's)")
    completes_agents(p.add_argument("name", nargs="?", default=None, metavar="NAME"))
    p.add_argument("--unread", action="store_true", help="only unread messages")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("read", help="mark messages read")
    p.add_argument("ids", nargs="+", type=int, metavar="ID")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("events", help="the change log: every write others may care about")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--kind", "-k", action="append", default=None,
                   help="only this kind (doc.state) or family (doc.*); repeatable")
    p.add_argument("--after", type=int, default=None, metavar="ID", help="start after this event id")
    p.add_argument("--limit", "-n", type=int, default=50,
                   help="without --after: show the last N events (default 50)")
    p.set_defaults(func=cmd_events)


# ---- messages --------------------------------------------------------------------------


async def cmd_send(args) -> int:
    body = read_text_file("-") if args.body == "-" else args.body
    async with acting_store(args) as (store, actor):
        msgs = await store.send_message(actor, args.to, body, priority=args.priority, thread=args.thread)
    if args.json:
        print_json([as_dict(m) for m in msgs])
    elif not msgs:
        print("nobody to send to: no other agent is registered")
    elif len(msgs) == 1:
        print(inert(f"sent message {msgs[0].id} to {msgs[0].recipient}"))
    else:
        print(inert(f"sent {len(msgs)} messages (ids {msgs[0].id}-{msgs[-1].id}) to "
                    + ", ".join(m.recipient for m in msgs)))
    return 0


async def cmd_inbox(args) -> int:
    async with acting_store(args) as (store, actor):
        name = args.name or actor
        msgs = await store.inbox(name, unread_only=args.unread, limit=args.limit)
    if args.json:
        print_json([as_dict(m) for m in msgs])
        return 0
    if not msgs:
        print(inert(f"{name}: no {'unread ' if args.unread else ''}messages"))
        return 0
    for m in msgs:
        flags = "unread" if m.read_at is None else "read"
        thread = f" [{m.thread}]" if m.thread else ""
        print(inert(f"#{m.id} {m.priority:<6} from {m.sender}{thread} {when(m.created_at)} {flags}"))
        print(indent(m.body))
    return 0


async def cmd_read(args) -> int:
    async with acting_store(args) as (store, actor):
        n = await store.mark_read(actor, args.ids)
    asked = len(set(args.ids))
    emit(args, {"marked": n, "asked": asked},
         f"marked {n} of {asked} read (the others were already read, or are not {inert(actor)}'s messages)"
         if n < asked else f"marked {n} read")
    return 0


# ---- events ----------------------------------------------------------------------------


def _print_events(events, as_json: bool) -> None:
    for ev in events:
        if as_json:
            sys.stdout.write(json.dumps(as_dict(ev), sort_keys=True) + "\n")
        else:
            print(event_line(ev))
    sys.stdout.flush()


async def cmd_events(args) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    try:
        return await _events(args)
    except BrokenPipeError:  # `crowdtui events | head`: the reader is gone, so are we
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


async def _events(args) -> int:
    from qms.follow import EventFollower

    async with acting_store(args) as (store, _actor):
        if args.after is not None:
            follower = EventFollower(store, args.after, kinds=args.kind, batch=1000,
                                     interval=FOLLOW_INTERVAL)
            async for events in follower.drain():  # everything after ID, page by page
                _print_events(events, args.json)
        else:
            events = await store.recent_events(limit=args.limit, kinds=args.kind)
            _print_events(events, args.json)
            # the newest shown is the newest that matches: follow from there
            follower = EventFollower(store, events[-1].id if events else await store.last_event_id(),
                                     kinds=args.kind, interval=FOLLOW_INTERVAL)
        if args.follow:
            async for events in follower:
                _print_events(events, args.json)
    return 0
