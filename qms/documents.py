"""Documents: typed, versioned content with a checkout lease and the review/approval workflow.

Every change runs in one ``BEGIN IMMEDIATE`` transaction with its events; the lease is
claimed with a single ``UPDATE … WHERE … RETURNING``. A refused action changes nothing.
"""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

import aiosqlite

from qms import workflow as wf
from qms.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooLarge
from qms.messages import MAX_MESSAGE_BYTES, check_id
from qms.models import Document, Event, Task, Version
from qms.names import OPERATOR, shown, validate_name, validate_text
from qms.quotas import check_version_in
from qms.registry import require_principal

MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_ASSIGNEES = 50
MAX_LEASE_SECONDS = 30 * 24 * 3600
DOC_ID_RE = re.compile(r"([A-Za-z][A-Za-z0-9]{0,15})-(\d{3,9})")
TYPE_RE = re.compile(r"[A-Z][A-Z0-9]{0,15}")
OUTCOMES = ("recommend", "request-updates")
ROUTE_KINDS = ("review", "approval")


def check_doc_id(doc_id: object) -> str:
    """Normalise ``sop-001`` to ``SOP-001``; anything not shaped like an id is InvalidInput."""
    if not isinstance(doc_id, str) or not DOC_ID_RE.fullmatch(doc_id):
        raise InvalidInput(f"invalid document id '{shown(doc_id)}': ids look like SOP-001")
    return doc_id.upper()


def check_content(content: object) -> str:
    if not isinstance(content, str):
        raise InvalidInput(f"document content must be text, not {type(content).__name__}")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"document content is not valid Unicode text ({exc.reason})") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise TooLarge(
            f"document content is {size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes: split it "
            "into several documents"
        )
    return content


def check_comment(comment: object, *, required: bool) -> str:
    if comment is None and not required:
        return ""
    if not isinstance(comment, str):
        raise InvalidInput(f"comment must be text, not {type(comment).__name__}")
    if required and not comment.strip():
        raise InvalidInput("a comment is required here; say what should change")
    if len(comment.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise TooLarge(f"comment is over {MAX_MESSAGE_BYTES} bytes; shorten it")
    return validate_text(comment, "comment", max_chars=MAX_MESSAGE_BYTES, allow_empty=True, multiline=True)


def utc_clock(ts: float) -> str:
    """``12:00:00 UTC`` (with the date when it is not today)."""
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if dt.date() == datetime.now(timezone.utc).date():
        return dt.strftime("%H:%M:%S UTC")
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def held_conflict(doc_id: str, holder: str, expires: float) -> Conflict:
    return Conflict(
        f"{doc_id} is held by {holder} until {utc_clock(expires)}; ask them to check in, "
        "or the operator can break the lock"
    )


def doc_from_row(row: sqlite3.Row, *, content: str = "", version: int | None = None) -> Document:
    return Document(
        id=row["id"], doc_type=row["doc_type"], title=row["title"], state=row["state"],
        version=version if version is not None else row["version"], author=row["author"],
        created_at=row["created_at"], updated_at=row["updated_at"], holder=row["holder"],
        lease_expires_at=row["lease_expires_at"], content=content, taken_at=row["taken_at"],
        executable=bool(row["executable"]), latest_version=row["version"],
    )


DOC_SELECT = (
    "SELECT d.*, t.executable FROM documents d JOIN doc_types t ON t.code = d.doc_type"
)


def no_such_doc(doc_id: str) -> NotFound:
    return NotFound(f"no document {doc_id}; check the id (`crowdtui doc ls` lists them)")


async def doc_row(db: aiosqlite.Connection, doc_id: str) -> sqlite3.Row:
    rows = await db.execute_fetchall(DOC_SELECT + " WHERE d.id = ?", (doc_id,))
    if not rows:
        raise no_such_doc(doc_id)
    return rows[0]


def lease_active(row: sqlite3.Row, now: float) -> bool:
    return row["holder"] is not None and row["lease_expires_at"] is not None and row["lease_expires_at"] > now


class DocumentsMixin:
    # ---- types ---------------------------------------------------------------------------

    async def doc_types(self) -> list[dict[str, Any]]:
        """The document types: [{"code", "name", "executable"}]."""
        rows = await self.query("SELECT code, name, executable FROM doc_types ORDER BY code")  # type: ignore[attr-defined]
        return [{"code": r["code"], "name": r["name"], "executable": bool(r["executable"])} for r in rows]

    async def add_doc_type(self, code: str, name: str, *, executable: bool, actor: str = OPERATOR) -> None:
        """Add a document type (e.g. ``WI``, work instruction)."""
        if not isinstance(code, str) or not TYPE_RE.fullmatch(code):
            raise InvalidInput(f"invalid type code '{shown(code)}': use 1-16 capital letters/digits")
        validate_text(name, "type name", max_chars=100)
        validate_name(actor)
        async with self.write() as db:  # type: ignore[attr-defined]
            rows = await db.execute_fetchall(
                "INSERT INTO doc_types (code, name, executable) VALUES (?, ?, ?)"
                " ON CONFLICT (code) DO NOTHING RETURNING code",
                (code, name, int(bool(executable))),
            )
            if not rows:
                raise Conflict(f"document type {code} already exists; pick another code")
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.type_added", code, {"name": name, "executable": bool(executable)}
            )

    # ---- create / read -------------------------------------------------------------------

    async def create_document(self, actor: str, doc_type: str, title: str, content: str = "") -> Document:
        """A new document in DRAFT at version 1, id TYPE-NNN (next free number of its type)."""
        validate_name(actor)
        if not isinstance(doc_type, str) or not TYPE_RE.fullmatch(doc_type.upper()):
            raise InvalidInput(f"invalid document type '{shown(doc_type)}': use a type code like SOP or CR")
        code = doc_type.upper()
        validate_text(title, "title", max_chars=200)
        check_content(content)
        now = time.time()
        async with self.write() as db:  # type: ignore[attr-defined]
            await check_version_in(db, self.quotas, actor, content, now)  # type: ignore[attr-defined]
            rows = await db.execute_fetchall(
                "UPDATE doc_types SET next_number = next_number + 1 WHERE code = ?"
                " RETURNING next_number - 1 AS n",
                (code,),
            )
            if not rows:
                codes = [r[0] for r in await db.execute_fetchall("SELECT code FROM doc_types ORDER BY code")]
                raise InvalidInput(f"unknown document type {code}; use one of {', '.join(codes)}")
            doc_id = f"{code}-{rows[0]['n']:03d}"
            await db.execute(
                "INSERT INTO documents (id, doc_type, title, state, version, author, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                (doc_id, code, title, wf.DRAFT, actor, now, now),
            )
            await db.execute(
                "INSERT INTO doc_versions (doc_id, number, author, created_at, note, content)"
                " VALUES (?, 1, ?, ?, NULL, ?)",
                (doc_id, actor, now, content),
            )
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.created", doc_id,
                {"doc_type": code, "title": title, "version": 1, "size": len(content.encode())},
            )
            return doc_from_row(await doc_row(db, doc_id), content=content)

    async def get_document(self, doc_id: str, version: int | None = None) -> Document:
        """The document with the content of ``version`` (default: the latest)."""
        doc_id = check_doc_id(doc_id)
        if version is not None:
            check_id(version, "version")
        rows = await self.query(DOC_SELECT + " WHERE d.id = ?", (doc_id,))  # type: ignore[attr-defined]
        if not rows:
            raise no_such_doc(doc_id)
        row = rows[0]
        number = row["version"] if version is None else version
        vrows = await self.query(  # type: ignore[attr-defined]
            "SELECT content FROM doc_versions WHERE doc_id = ? AND number = ?", (doc_id, number)
        )
        if not vrows:
            raise NotFound(f"{doc_id} has no version {number}; it has versions 1 to {row['version']}")
        return doc_from_row(row, content=vrows[0]["content"], version=number)

    async def list_documents(self, *, state: str | None = None, doc_type: str | None = None) -> list[Document]:
        """Documents (content left empty: use get_document), ordered by type and number."""
        sql = DOC_SELECT + " WHERE 1"
        params: list[Any] = []
        if state is not None:
            if state not in wf.STATES:
                raise InvalidInput(f"unknown state '{shown(state)}': use one of {', '.join(wf.STATES)}")
            sql += " AND d.state = ?"
            params.append(state)
        if doc_type is not None:
            if not isinstance(doc_type, str) or not TYPE_RE.fullmatch(doc_type.upper()):
                raise InvalidInput(f"invalid document type '{shown(doc_type)}': use a type code like SOP")
            sql += " AND d.doc_type = ?"
            params.append(doc_type.upper())
        sql += " ORDER BY d.doc_type, length(d.id), d.id"
        return [doc_from_row(r) for r in await self.query(sql, params)]  # type: ignore[attr-defined]

    async def versions(self, doc_id: str) -> list[Version]:
        doc_id = check_doc_id(doc_id)
        rows = await self.query(  # type: ignore[attr-defined]
            "SELECT number, author, created_at, note, length(CAST(content AS BLOB)) AS size"
            " FROM doc_versions WHERE doc_id = ? ORDER BY number",
            (doc_id,),
        )
        if not rows:
            raise no_such_doc(doc_id)
        return [Version(r["number"], r["author"], r["created_at"], r["note"], r["size"]) for r in rows]

    async def history(self, doc_id: str) -> list[Event]:
        """Every event about the document, oldest first."""
        doc_id = check_doc_id(doc_id)
        if not await self.query("SELECT 1 FROM documents WHERE id = ?", (doc_id,)):  # type: ignore[attr-defined]
            raise no_such_doc(doc_id)
        out: list[Event] = []
        last = 0
        while True:
            batch = await self.events_after(last, limit=10_000, subject=doc_id)  # type: ignore[attr-defined]
            out += batch
            if len(batch) < 10_000:
                return out
            last = batch[-1].id

    async def pending_tasks(self, name: str) -> list[Task]:
        """Open review/approval tasks assigned to ``name``, oldest first."""
        validate_name(name)
        rows = await self.query(  # type: ignore[attr-defined]
            "SELECT t.*, d.title AS doc_title, d.state AS doc_state FROM tasks t"
            " JOIN documents d ON d.id = t.doc_id WHERE t.assignee = ? AND t.status = 'open'"
            " ORDER BY t.id",
            (name,),
        )
        return [
            Task(r["id"], r["doc_id"], r["kind"], r["assignee"], r["created_at"], r["doc_title"],
                 r["doc_state"], r["routed_by"], r["round"])
            for r in rows
        ]

    # ---- checkout lease ------------------------------------------------------------------

    async def checkout(self, doc_id: str, actor: str, *, lease_seconds: float = 3600) -> Document:
        """Take (or renew) the checkout lease. Held by someone else → Conflict naming them."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        if (
            isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float))
            or not 0 < lease_seconds <= MAX_LEASE_SECONDS
        ):
            raise InvalidInput(f"lease_seconds must be more than 0 and at most {MAX_LEASE_SECONDS}")
        now = time.time()
        async with self.write() as db:  # type: ignore[attr-defined]
            rows = await db.execute_fetchall(
                "UPDATE documents SET holder = ?1, taken_at = ?2, lease_expires_at = ?3"
                " WHERE id = ?4 AND state IN ('DRAFT', 'IN_EXECUTION')"
                " AND (holder IS NULL OR holder = ?1 OR lease_expires_at <= ?2)"
                " RETURNING id",
                (actor, now, now + lease_seconds, doc_id),
            )
            if not rows:
                row = await doc_row(db, doc_id)
                if row["state"] not in wf.EDITABLE:
                    raise wf.illegal(doc_id, row["state"], "check out")
                raise held_conflict(doc_id, row["holder"], row["lease_expires_at"])
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.checkout", doc_id,
                {"lease_expires_at": now + lease_seconds, "lease_seconds": lease_seconds},
            )
            row = await doc_row(db, doc_id)
            vrows = await db.execute_fetchall(
                "SELECT content FROM doc_versions WHERE doc_id = ? AND number = ?", (doc_id, row["version"])
            )
            return doc_from_row(row, content=vrows[0]["content"])

    async def _not_holder(self, db: aiosqlite.Connection, doc_id: str, actor: str, action: str) -> Exception:
        """Why ``actor`` could not ``action`` (check in / cancel the checkout of) ``doc_id``."""
        row = await doc_row(db, doc_id)
        if row["state"] not in wf.EDITABLE:
            return wf.illegal(doc_id, row["state"], action)
        if row["holder"] is None:
            return PermissionDenied(f"cannot {action} {doc_id}: it is not checked out; check it out first")
        return PermissionDenied(
            f"cannot {action} {doc_id}: it is checked out by {row['holder']}, not {actor}; "
            "only the holder can"
        )

    async def checkin(self, doc_id: str, actor: str, content: str, *, note: str | None = None) -> Document:
        """Store ``content`` as a new version (nothing overwritten) and release the lease."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        check_content(content)
        if note is not None:
            validate_text(note, "note", max_chars=500, allow_empty=True)
        now = time.time()
        async with self.write() as db:  # type: ignore[attr-defined]
            await check_version_in(db, self.quotas, actor, content, now)  # type: ignore[attr-defined]
            rows = await db.execute_fetchall(
                "UPDATE documents SET version = version + 1, holder = NULL, taken_at = NULL,"
                " lease_expires_at = NULL, updated_at = ? WHERE id = ? AND holder = ?"
                " AND state IN ('DRAFT', 'IN_EXECUTION') RETURNING version",
                (now, doc_id, actor),
            )
            if not rows:
                raise await self._not_holder(db, doc_id, actor, "check in")
            number = rows[0]["version"]
            await db.execute(
                "INSERT INTO doc_versions (doc_id, number, author, created_at, note, content)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (doc_id, number, actor, now, note, content),
            )
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.checkin", doc_id,
                {"version": number, "note": note, "size": len(content.encode())},
            )
            return doc_from_row(await doc_row(db, doc_id), content=content)

    async def cancel_checkout(self, doc_id: str, actor: str) -> None:
        """Give the lease back without a new version (holder only)."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        async with self.write() as db:  # type: ignore[attr-defined]
            rows = await db.execute_fetchall(
                "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND holder = ? RETURNING id",
                (doc_id, actor),
            )
            if not rows:
                raise await self._not_holder(db, doc_id, actor, "cancel the checkout of")
            await self.append_event_in(db, actor, "doc.checkout_cancelled", doc_id, {})  # type: ignore[attr-defined]

    async def break_lock(self, doc_id: str, actor: str) -> None:
        """Operator only: drop whoever holds the checkout (expired or not)."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        if actor != OPERATOR:
            raise PermissionDenied(
                f"only the operator can break a lock, not {actor}; ask the holder to check in"
            )
        async with self.write() as db:  # type: ignore[attr-defined]
            row = await doc_row(db, doc_id)
            if row["holder"] is None:
                raise InvalidInput(f"{doc_id} is not checked out; there is no lock to break")
            await db.execute(
                "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND holder = ?",
                (doc_id, row["holder"]),
            )
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.lock_broken", doc_id,
                {"holder": row["holder"], "lease_expires_at": row["lease_expires_at"],
                 "expired": row["lease_expires_at"] <= time.time()},
            )

    # ---- workflow ------------------------------------------------------------------------

    async def _set_state(
        self, db: aiosqlite.Connection, doc_id: str, actor: str, old: str, new: str, *,
        round: int | None = None, reason: str = "",
    ) -> None:
        sql = "UPDATE documents SET state = ?, updated_at = ?"
        params: list[Any] = [new, time.time()]
        if round is not None:
            sql += ", round = ?"
            params.append(round)
        sql += " WHERE id = ? AND state = ? RETURNING id"
        params += [doc_id, old]
        if not await db.execute_fetchall(sql, params):  # cannot happen inside our transaction
            raise wf.illegal(doc_id, old, "change the state of")
        detail = {"from": old, "to": new}
        if reason:
            detail["reason"] = reason
        await self.append_event_in(db, actor, "doc.state", doc_id, detail)  # type: ignore[attr-defined]

    async def _make_tasks(
        self, db: aiosqlite.Connection, row: sqlite3.Row, actor: str, kind: str,
        assignees: list[str], round: int,
    ) -> list[int]:
        doc_id = row["id"]
        verb = "Review" if kind == "review" else "Approve"
        how = (
            "record recommend or request-updates with a comment"
            if kind == "review" else "approve it, or reject it with a comment"
        )
        ids = []
        now = time.time()
        for who in assignees:
            msg = await self.deliver_in(  # type: ignore[attr-defined]
                db, actor, who,
                f"Task: {verb.lower()} {doc_id} \"{row['title']}\" (version {row['version']}), "
                f"routed by {actor}; {how}.",
                priority="normal", thread=doc_id,
            )
            rows = await db.execute_fetchall(
                "INSERT INTO tasks (doc_id, kind, assignee, round, routed_by, created_at, message_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (doc_id, kind, who, round, actor, now, msg.id),
            )
            ids.append(rows[0]["id"])
        return ids

    async def route(self, doc_id: str, actor: str, kind: str, assignees: list[str]) -> None:
        """Send for review (DRAFT/IN_EXECUTION) or approval (REVIEWED/POST_REVIEWED).

        Each assignee (a registered agent or the operator) gets a task and an inbox message.
        """
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        if kind not in ROUTE_KINDS:
            raise InvalidInput(f"invalid route kind '{shown(kind)}': use review or approval")
        if isinstance(assignees, str) or not isinstance(assignees, (list, tuple)):
            raise InvalidInput("assignees must be a list of names")
        people: list[str] = []
        for a in assignees:
            validate_name(a)
            if a not in people:
                people.append(a)
        if not people:
            raise InvalidInput(f"name at least one {'reviewer' if kind == 'review' else 'approver'}")
        if len(people) > MAX_ASSIGNEES:
            raise InvalidInput(f"at most {MAX_ASSIGNEES} assignees per routing")
        table = wf.ROUTE_REVIEW if kind == "review" else wf.ROUTE_APPROVAL
        now = time.time()
        async with self.write() as db:  # type: ignore[attr-defined]
            row = await doc_row(db, doc_id)
            new = wf.target(table, doc_id, row["state"], f"route for {kind}")
            if lease_active(row, now):
                raise Conflict(
                    f"{doc_id} is checked out by {row['holder']} until {utc_clock(row['lease_expires_at'])}; "
                    "check it in or cancel the checkout before routing"
                )
            for who in people:
                await require_principal(db, who)
            if row["holder"] is not None:  # an expired lease: drop it
                await db.execute(
                    "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL WHERE id = ?",
                    (doc_id,),
                )
            round_no = row["round"] + 1
            task_ids = await self._make_tasks(db, row, actor, kind, people, round_no)
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.routed", doc_id,
                {"kind": kind, "assignees": people, "round": round_no, "version": row["version"],
                 "tasks": task_ids},
            )
            await self._set_state(db, doc_id, actor, row["state"], new, round=round_no)

    async def _close_task(
        self, db: aiosqlite.Connection, row: sqlite3.Row, actor: str, kind: str,
        outcome: str, comment: str,
    ) -> int:
        rows = await db.execute_fetchall(
            "UPDATE tasks SET status = 'done', outcome = ?, comment = ?, done_at = ?"
            " WHERE doc_id = ? AND kind = ? AND assignee = ? AND round = ? AND status = 'open'"
            " RETURNING id",
            (outcome, comment, time.time(), row["id"], kind, actor, row["round"]),
        )
        if not rows:
            raise PermissionDenied(
                f"{actor} has no open {kind} task for {row['id']}; only the assigned "
                f"{'reviewers' if kind == 'review' else 'approvers'} can do this"
            )
        return rows[0]["id"]

    async def _open_left(self, db: aiosqlite.Connection, doc_id: str, kind: str, round_no: int) -> int:
        rows = await db.execute_fetchall(
            "SELECT COUNT(*) FROM tasks WHERE doc_id = ? AND kind = ? AND round = ? AND status = 'open'",
            (doc_id, kind, round_no),
        )
        return rows[0][0]

    async def review(self, doc_id: str, actor: str, outcome: str, comment: str) -> None:
        """Record an assigned reviewer's outcome; the last one decides the state."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        if outcome not in OUTCOMES:
            raise InvalidInput(f"invalid review outcome '{shown(outcome)}': use recommend or request-updates")
        comment = check_comment(comment, required=outcome == "request-updates")
        async with self.write() as db:  # type: ignore[attr-defined]
            row = await doc_row(db, doc_id)
            wf.target(wf.REVIEW_DONE, doc_id, row["state"], "review")
            task_id = await self._close_task(db, row, actor, "review", outcome, comment)
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.reviewed", doc_id,
                {"outcome": outcome, "comment": comment, "round": row["round"], "task": task_id,
                 "version": row["version"]},
            )
            if await self._open_left(db, doc_id, "review", row["round"]):
                return
            outcomes = [
                r[0] for r in await db.execute_fetchall(
                    "SELECT outcome FROM tasks WHERE doc_id = ? AND kind = 'review' AND round = ?"
                    " AND status = 'done'",
                    (doc_id, row["round"]),
                )
            ]
            if "request-updates" in outcomes:
                await self._set_state(
                    db, doc_id, actor, row["state"], wf.REVIEW_UPDATES[row["state"]], reason="updates requested"
                )
            else:
                await self._set_state(db, doc_id, actor, row["state"], wf.REVIEW_DONE[row["state"]])

    async def approve(self, doc_id: str, actor: str, comment: str | None = None) -> None:
        """Record an assigned approver's approval; when all approved the document moves on."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        comment = check_comment(comment, required=False)
        async with self.write() as db:  # type: ignore[attr-defined]
            row = await doc_row(db, doc_id)
            table = wf.APPROVE_DONE_EXEC if row["executable"] else wf.APPROVE_DONE_NONEXEC
            new = wf.target(table, doc_id, row["state"], "approve")
            task_id = await self._close_task(db, row, actor, "approval", "approved", comment)
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.approved", doc_id,
                {"comment": comment, "round": row["round"], "task": task_id, "version": row["version"]},
            )
            if not await self._open_left(db, doc_id, "approval", row["round"]):
                await self._set_state(db, doc_id, actor, row["state"], new)

    async def reject(self, doc_id: str, actor: str, comment: str) -> None:
        """An approver sends the document back to review: other approval tasks are cancelled
        and the last review round's reviewers get fresh review tasks."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        comment = check_comment(comment, required=True)
        async with self.write() as db:  # type: ignore[attr-defined]
            row = await doc_row(db, doc_id)
            new = wf.target(wf.REJECT, doc_id, row["state"], "reject")
            task_id = await self._close_task(db, row, actor, "approval", "rejected", comment)
            cancelled = [
                r[0] for r in await db.execute_fetchall(
                    "UPDATE tasks SET status = 'cancelled', done_at = ? WHERE doc_id = ?"
                    " AND kind = 'approval' AND status = 'open' RETURNING id",
                    (time.time(), doc_id),
                )
            ]
            reviewers = [
                r[0] for r in await db.execute_fetchall(
                    "SELECT assignee FROM tasks WHERE doc_id = ?1 AND kind = 'review' AND round ="
                    " (SELECT MAX(round) FROM tasks WHERE doc_id = ?1 AND kind = 'review')"
                    " GROUP BY assignee ORDER BY MIN(id)",
                    (doc_id,),
                )
            ]
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.rejected", doc_id,
                {"comment": comment, "round": row["round"], "task": task_id, "cancelled_tasks": cancelled,
                 "version": row["version"]},
            )
            round_no = row["round"] + 1
            task_ids = await self._make_tasks(db, row, actor, "review", reviewers, round_no)
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.routed", doc_id,
                {"kind": "review", "assignees": reviewers, "round": round_no, "version": row["version"],
                 "tasks": task_ids, "after_rejection": True},
            )
            await self._set_state(db, doc_id, actor, row["state"], new, round=round_no, reason="rejected")

    async def reassign_task(self, task_id: int, to: str, actor: str = OPERATOR) -> Task:
        """Operator only: move an open review/approval task to someone else (e.g. the
        assignee's agent was removed), so a routed document is never stranded."""
        check_id(task_id, "task id")
        validate_name(to)
        validate_name(actor)
        if actor != OPERATOR:
            raise PermissionDenied(f"only the operator can reassign a task, not {actor}")
        async with self.write() as db:  # type: ignore[attr-defined]
            rows = await db.execute_fetchall("SELECT * FROM tasks WHERE id = ?", (task_id,))
            if not rows:
                raise NotFound(f"no task {task_id}; `crowdtui doc tasks NAME` lists open tasks")
            task = rows[0]
            if task["status"] != "open":
                raise InvalidInput(f"task {task_id} is {task['status']}; only open tasks can be reassigned")
            await require_principal(db, to)
            busy = await db.execute_fetchall(
                "SELECT 1 FROM tasks WHERE doc_id = ? AND kind = ? AND round = ? AND assignee = ?"
                " AND status IN ('open', 'done')",
                (task["doc_id"], task["kind"], task["round"], to),
            )
            if busy:
                raise InvalidInput(
                    f"{to} already has a {task['kind']} task for {task['doc_id']} in this round; pick someone else"
                )
            await db.execute(
                "UPDATE tasks SET status = 'cancelled', outcome = 'reassigned', done_at = ? WHERE id = ?",
                (time.time(), task_id),
            )
            row = await doc_row(db, task["doc_id"])
            [new_id] = await self._make_tasks(db, row, actor, task["kind"], [to], task["round"])
            await self.append_event_in(  # type: ignore[attr-defined]
                db, actor, "doc.task_reassigned", task["doc_id"],
                {"task": task_id, "new_task": new_id, "kind": task["kind"], "from": task["assignee"],
                 "to": to, "round": task["round"]},
            )
            return Task(new_id, row["id"], task["kind"], to, time.time(), row["title"], row["state"],
                        actor, task["round"])

    async def _author_step(self, doc_id: str, actor: str, table: dict[str, str], action: str) -> None:
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        async with self.write() as db:  # type: ignore[attr-defined]
            row = await doc_row(db, doc_id)
            new = wf.target(table, doc_id, row["state"], action)
            if actor not in (row["author"], OPERATOR):
                raise PermissionDenied(
                    f"only the author ({row['author']}) or the operator can {action} {doc_id}, not {actor}"
                )
            await self._set_state(db, doc_id, actor, row["state"], new)

    async def release(self, doc_id: str, actor: str) -> None:
        """PRE_APPROVED → IN_EXECUTION (author or operator)."""
        await self._author_step(doc_id, actor, wf.RELEASE, "release")

    async def close_document(self, doc_id: str, actor: str) -> None:
        """POST_APPROVED → CLOSED (author or operator)."""
        await self._author_step(doc_id, actor, wf.CLOSE, "close")

    async def retire(self, doc_id: str, actor: str) -> None:
        """EFFECTIVE → RETIRED (author or operator)."""
        await self._author_step(doc_id, actor, wf.RETIRE, "retire")
