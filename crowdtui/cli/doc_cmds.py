"""The operator's document commands: create, edit, route, review, approve.

They act like the other store commands (see :mod:`crowdtui.cli.store_cmds`: as
``operator`` or ``--as NAME``, the roster synced first, text made inert).

Commands::

    crowdtui doc new TYPE TITLE [--file F] [--json]
    crowdtui doc ls [--state S] [--type T] [--json]
    crowdtui doc show ID [--version N] [--json]
    crowdtui doc checkout ID [--lease SECONDS]
    crowdtui doc checkin ID --file F [-m NOTE]
    crowdtui doc cancel ID
    crowdtui doc route ID review|approval --to A,B
    crowdtui doc review ID recommend|request-updates -m TEXT
    crowdtui doc approve ID [-m TEXT]
    crowdtui doc reject ID -m TEXT
    crowdtui doc release|close|retire|break-lock ID
    crowdtui doc reassign TASK --to NAME        (operator: move an open task to someone else)
    crowdtui doc history ID [--json]
    crowdtui doc tasks [NAME] [--json]

Every command takes ``--json`` (shapes: docs/cli-json.md): a change prints the document
after it (without ``content``), ``reassign`` the new task.
"""

from __future__ import annotations

import sys
import time

from crowdtui.cli.common import completes_agents, emit, inert, print_json
from crowdtui.cli.store_cmds import acting_store, as_dict, event_line, read_text_file, when
from crowdtui.errors import UsageError


def names_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--to needs at least one name, e.g. --to qa,lead")
    return names


def register(sub) -> None:
    doc = sub.add_parser("doc", help="documents: create, edit, route, review, approve")
    ds = doc.add_subparsers(dest="doc_command", metavar="ACTION", required=True)

    p = ds.add_parser("new", help="create a document in DRAFT (types: SOP, SPEC, CR, TP)")
    p.add_argument("doc_type", metavar="TYPE")
    p.add_argument("title", metavar="TITLE")
    p.add_argument("--file", "-f", default=None, help="initial content (- reads stdin)")
    p.set_defaults(func=cmd_doc_new)

    p = ds.add_parser("ls", help="list documents")
    p.add_argument("--state", default=None)
    p.add_argument("--type", dest="doc_type", default=None)
    p.set_defaults(func=cmd_doc_ls)

    p = ds.add_parser("show", help="show a document (latest version, or --version N)")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("--version", type=int, default=None)
    p.set_defaults(func=cmd_doc_show)

    p = ds.add_parser("checkout", help="take the checkout lease")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("--lease", type=float, default=3600, metavar="SECONDS")
    p.set_defaults(func=cmd_doc_checkout)

    p = ds.add_parser("checkin", help="store a new version from a file and release the lease")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("--file", "-f", required=True, help="new content (- reads stdin)")
    p.add_argument("-m", "--message", dest="note", default=None, help="note for this version")
    p.set_defaults(func=cmd_doc_checkin)

    p = ds.add_parser("cancel", help="give the checkout back without a new version")
    p.add_argument("doc_id", metavar="ID")
    p.set_defaults(func=cmd_doc_cancel)

    p = ds.add_parser("route", help="send for review or approval")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("kind", choices=("review", "approval"))
    p.add_argument("--to", required=True, help="comma-separated agent names (or operator)")
    p.set_defaults(func=cmd_doc_route)

    p = ds.add_parser("review", help="record your review")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("outcome", choices=("recommend", "request-updates"))
    p.add_argument("-m", "--message", dest="comment", required=True)
    p.set_defaults(func=cmd_doc_review)

    p = ds.add_parser("approve", help="approve (as an assigned approver)")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("-m", "--message", dest="comment", default=None)
    p.set_defaults(func=cmd_doc_approve)

    p = ds.add_parser("reject", help="reject back to review (as an assigned approver)")
    p.add_argument("doc_id", metavar="ID")
    p.add_argument("-m", "--message", dest="comment", required=True)
    p.set_defaults(func=cmd_doc_reject)

    for name, method, what in (
        ("release", "release", "PRE_APPROVED → IN_EXECUTION"),
        ("close", "close_document", "POST_APPROVED → CLOSED"),
        ("retire", "retire", "EFFECTIVE → RETIRED"),
        ("break-lock", "break_lock", "drop whoever holds the checkout (operator only)"),
    ):
        p = ds.add_parser(name, help=what)
        p.add_argument("doc_id", metavar="ID")
        p.set_defaults(func=cmd_doc_step, method=method, verb=name)

    p = ds.add_parser("reassign", help="move an open review/approval task to someone else (operator)")
    p.add_argument("task_id", type=int, metavar="TASK", help="task id (see `doc tasks NAME`)")
    p.add_argument("--to", required=True, metavar="NAME")
    p.set_defaults(func=cmd_doc_reassign)

    p = ds.add_parser("history", help="every event about a document")
    p.add_argument("doc_id", metavar="ID")
    p.set_defaults(func=cmd_doc_history)

    p = ds.add_parser("tasks", help="open review/approval tasks (yours, or NAME's)")
    completes_agents(p.add_argument("name", nargs="?", default=None, metavar="NAME"))
    p.set_defaults(func=cmd_doc_tasks)


async def cmd_doc_new(args) -> int:
    content = read_text_file(args.file) if args.file else ""
    async with acting_store(args) as (store, actor):
        doc = await store.create_document(actor, args.doc_type, args.title, content)
    if args.json:
        print_json(as_dict(doc))
    else:
        print(inert(f"created {doc.id} \"{doc.title}\" (DRAFT, version 1)"))
    return 0


async def cmd_doc_ls(args) -> int:
    async with acting_store(args) as (store, _actor):
        docs = await store.list_documents(state=args.state, doc_type=args.doc_type)
    if args.json:
        print_json([as_dict(d, content=False) for d in docs])
        return 0
    if not docs:
        print("no documents")
        return 0
    print(f"{'ID':<10} {'STATE':<14} {'V':>3} {'HOLDER':<16} TITLE")
    now = time.time()
    for d in docs:
        holder = d.holder if d.is_held(now) else "-"
        print(inert(f"{d.id:<10} {d.state:<14} {d.version:>3} {holder:<16} {d.title}"))
    return 0


async def cmd_doc_show(args) -> int:
    async with acting_store(args) as (store, _actor):
        doc = await store.get_document(args.doc_id, version=args.version)
    if args.json:
        print_json(as_dict(doc))
        return 0
    print(inert(f"{doc.id} \"{doc.title}\""))
    print(inert(f"  type {doc.doc_type}{' (executable)' if doc.executable else ''}, state {doc.state}, "
                f"version {doc.version} of {doc.latest_version}, author {doc.author}"))
    if doc.is_held():
        print(inert(f"  checked out by {doc.holder} until {when(doc.lease_expires_at)}"))
    print()
    sys.stdout.write(inert(doc.content))
    if doc.content and not doc.content.endswith("\n"):
        sys.stdout.write("\n")
    return 0


async def cmd_doc_checkout(args) -> int:
    async with acting_store(args) as (store, actor):
        doc = await store.checkout(args.doc_id, actor, lease_seconds=args.lease)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id} checked out by {actor} until "
                                                  f"{when(doc.lease_expires_at)} (version {doc.version})"))
    return 0


async def cmd_doc_checkin(args) -> int:
    content = read_text_file(args.file)
    async with acting_store(args) as (store, actor):
        doc = await store.checkin(args.doc_id, actor, content, note=args.note)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id} checked in as version {doc.version}"))
    return 0


async def cmd_doc_cancel(args) -> int:
    async with acting_store(args) as (store, actor):
        await store.cancel_checkout(args.doc_id, actor)
        doc = await store.get_document(args.doc_id)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id}: checkout cancelled"))
    return 0


async def cmd_doc_route(args) -> int:
    people = names_list(args.to)
    async with acting_store(args) as (store, actor):
        await store.route(args.doc_id, actor, args.kind, people)
        doc = await store.get_document(args.doc_id)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id} routed for {args.kind} to {', '.join(people)}; now {doc.state}"))
    return 0


async def cmd_doc_review(args) -> int:
    async with acting_store(args) as (store, actor):
        await store.review(args.doc_id, actor, args.outcome, args.comment)
        doc = await store.get_document(args.doc_id)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id}: {actor} reviewed ({args.outcome}); now {doc.state}"))
    return 0


async def cmd_doc_approve(args) -> int:
    async with acting_store(args) as (store, actor):
        await store.approve(args.doc_id, actor, args.comment)
        doc = await store.get_document(args.doc_id)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id}: approved by {actor}; now {doc.state}"))
    return 0


async def cmd_doc_reject(args) -> int:
    async with acting_store(args) as (store, actor):
        await store.reject(args.doc_id, actor, args.comment)
        doc = await store.get_document(args.doc_id)
    emit(args, as_dict(doc, content=False), inert(f"{doc.id}: rejected by {actor}; back to {doc.state}"))
    return 0


async def cmd_doc_step(args) -> int:
    async with acting_store(args) as (store, actor):
        await getattr(store, args.method)(args.doc_id, actor)
        doc = await store.get_document(args.doc_id)
    if args.method == "break_lock":
        emit(args, as_dict(doc, content=False), inert(f"{doc.id}: lock broken; it is free to check out"))
    else:  # released, closed, retired
        emit(args, as_dict(doc, content=False), inert(f"{doc.id}: {args.verb}d; now {doc.state}"))
    return 0


async def cmd_doc_reassign(args) -> int:
    async with acting_store(args) as (store, actor):
        task = await store.reassign_task(args.task_id, args.to, actor)
    emit(args, as_dict(task), inert(f"task {args.task_id} reassigned: {task.doc_id} {task.kind} is now "
                                    f"task {task.id} for {task.assignee}"))
    return 0


async def cmd_doc_history(args) -> int:
    async with acting_store(args) as (store, _actor):
        events = await store.history(args.doc_id)
    if args.json:
        print_json([as_dict(e) for e in events])
    else:
        for ev in events:
            print(event_line(ev))
    return 0


async def cmd_doc_tasks(args) -> int:
    async with acting_store(args) as (store, actor):
        name = args.name or actor
        tasks = await store.pending_tasks(name)
    if args.json:
        print_json([as_dict(t) for t in tasks])
        return 0
    if not tasks:
        print(inert(f"{name}: no open tasks"))
    for t in tasks:
        print(inert(f"#{t.id} {t.doc_id} {t.kind} \"{t.doc_title}\" ({t.doc_state}), "
                    f"routed by {t.routed_by} {when(t.created_at)}"))
    return 0
