"""Documents: typed, versioned content with a checkout lease (the review/approval
workflow is in ``qms.doc_workflow``).

Every change runs in one ``BEGIN IMMEDIATE`` transaction with its events; the lease is
claimed with a single ``UPDATE … WHERE … RETURNING``. A refused action changes nothing
but its ``doc.refused`` event.
"""

from __future__ import annotations

import time
from typing import Any

from qms import policy as duty
from qms import workflow as wf
from qms.doc_rows import (
    DEFAULT_LEASE_SECONDS, DOC_SELECT, MAX_DOCUMENT_BYTES, TYPE_RE, check_content, check_doc_id,
    check_lease_seconds, doc_from_row, doc_row, held_conflict, no_such_doc, utc_clock,
)
from qms.doc_workflow import WorkflowMixin
from qms.errors import Conflict, InvalidInput, NotFound
from qms.messages import check_id
from qms.models import Document, Event, Task, Version
from qms.names import OPERATOR, shown, validate_name, validate_text
from qms.quotas import check_version_in
from qms.writer import Transaction

__all__ = ["DocumentsMixin", "MAX_DOCUMENT_BYTES", "check_doc_id"]


class DocumentsMixin(WorkflowMixin):
    # ---- types ---------------------------------------------------------------------------

    async def doc_types(self) -> list[dict[str, Any]]:
        """The document types: [{"code", "name", "executable"}]."""
        rows = await self.query("SELECT code, name, executable FROM doc_types ORDER BY code")
        return [{"code": r["code"], "name": r["name"], "executable": bool(r["executable"])} for r in rows]

    async def add_doc_type(self, code: str, name: str, *, executable: bool, actor: str = OPERATOR) -> None:
        """Add a document type (e.g. ``WI``, work instruction)."""
        if not isinstance(code, str) or not TYPE_RE.fullmatch(code):
            raise InvalidInput(f"invalid type code '{shown(code)}': use 1-16 capital letters/digits")
        validate_text(name, "type name", max_chars=100)
        validate_name(actor)
        async with self.write() as db:
            rows = await db.execute_fetchall(
                "INSERT INTO doc_types (code, name, executable) VALUES (?, ?, ?)"
                " ON CONFLICT (code) DO NOTHING RETURNING code",
                (code, name, int(bool(executable))),
            )
            if not rows:
                raise Conflict(f"document type {code} already exists; pick another code")
            await self.append_event_in(
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
        async with self.write() as db:
            await check_version_in(db, self.quotas, actor, content, now)
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
            await self.append_event_in(
                db, actor, "doc.created", doc_id,
                {"doc_type": code, "title": title, "version": 1, "size": len(content.encode())},
            )
            return doc_from_row(await doc_row(db, doc_id), content=content)

    async def get_document(self, doc_id: str, version: int | None = None) -> Document:
        """The document with the content of ``version`` (default: the latest)."""
        doc_id = check_doc_id(doc_id)
        if version is not None:
            check_id(version, "version")
        rows = await self.query(DOC_SELECT + " WHERE d.id = ?", (doc_id,))
        if not rows:
            raise no_such_doc(doc_id)
        row = rows[0]
        number = row["version"] if version is None else version
        vrows = await self.query(
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
        return [doc_from_row(r) for r in await self.query(sql, params)]

    async def versions(self, doc_id: str) -> list[Version]:
        doc_id = check_doc_id(doc_id)
        rows = await self.query(
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
        if not await self.query("SELECT 1 FROM documents WHERE id = ?", (doc_id,)):
            raise no_such_doc(doc_id)
        out: list[Event] = []
        last = 0
        while True:
            batch = await self.events_after(last, limit=10_000, subject=doc_id)
            out += batch
            if len(batch) < 10_000:
                return out
            last = batch[-1].id

    async def pending_tasks(self, name: str) -> list[Task]:
        """Open review/approval tasks assigned to ``name``, oldest first."""
        validate_name(name)
        rows = await self.query(
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

    async def checkout(self, doc_id: str, actor: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Document:
        """Take (or renew) the checkout lease for ``lease_seconds`` (MIN_LEASE_SECONDS to
        MAX_LEASE_SECONDS). Held by someone else → Conflict naming them."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        lease_seconds = check_lease_seconds(lease_seconds)
        now = time.time()
        async with self.write() as db:
            rows = await db.execute_fetchall(
                "UPDATE documents SET holder = ?1, taken_at = ?2, lease_expires_at = ?3, lease_seconds = ?5"
                " WHERE id = ?4 AND state IN ('DRAFT', 'IN_EXECUTION')"
                " AND (holder IS NULL OR holder = ?1 OR lease_expires_at <= ?2)"
                " RETURNING id",
                (actor, now, now + lease_seconds, doc_id, lease_seconds),
            )
            if not rows:
                row = await doc_row(db, doc_id)
                if row["state"] not in wf.EDITABLE:
                    raise wf.illegal(doc_id, row["state"], "check out")
                raise held_conflict(doc_id, row["holder"], row["lease_expires_at"])
            await self.append_event_in(
                db, actor, "doc.checkout", doc_id,
                {"lease_expires_at": now + lease_seconds, "lease_seconds": lease_seconds},
            )
            row = await doc_row(db, doc_id)
            vrows = await db.execute_fetchall(
                "SELECT content FROM doc_versions WHERE doc_id = ? AND number = ?", (doc_id, row["version"])
            )
            return doc_from_row(row, content=vrows[0]["content"])

    async def renew_checkout(self, doc_id: str, actor: str, *, lease_seconds: float | None = None) -> Document:
        """The holder extends a lease it still holds: it runs ``lease_seconds`` from now (default:
        the length chosen at checkout). A lease that ran out or was released is not renewed."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        if lease_seconds is not None:
            lease_seconds = check_lease_seconds(lease_seconds)
        now = time.time()
        async with self.recording_refusals(actor, doc_id, "renew the checkout"), self.write() as db:
            rows = await db.execute_fetchall(
                "UPDATE documents SET lease_seconds = COALESCE(?1, lease_seconds, ?2),"
                " lease_expires_at = ?3 + COALESCE(?1, lease_seconds, ?2)"
                " WHERE id = ?4 AND holder = ?5 AND lease_expires_at > ?3"
                " AND state IN ('DRAFT', 'IN_EXECUTION') RETURNING lease_expires_at, lease_seconds",
                (lease_seconds, DEFAULT_LEASE_SECONDS, now, doc_id, actor),
            )
            if not rows:
                row = await doc_row(db, doc_id)
                if row["holder"] == actor and row["state"] in wf.EDITABLE:
                    raise Conflict(
                        f"your checkout of {doc_id} ran out at {utc_clock(row['lease_expires_at'])}; "
                        "check it out again (checkout_document) if it is still free"
                    )
                raise await self._not_holder(db, doc_id, actor, "renew the checkout of")
            await self.append_event_in(
                db, actor, "doc.lease_renewed", doc_id,
                {"lease_expires_at": rows[0]["lease_expires_at"], "lease_seconds": rows[0]["lease_seconds"]},
            )
            return doc_from_row(await doc_row(db, doc_id))

    async def release_leases_of(self, holder: str, reason: str, *, actor: str = "hub") -> list[str]:
        """Release every checkout ``holder`` has (its agent is gone: stopped or crashed), each
        with a ``doc.lease_released`` event giving ``reason``. Returns the document ids."""
        validate_name(holder)
        validate_name(actor)
        validate_text(reason, "reason", max_chars=300)
        async with self.write() as db:
            rows = await db.execute_fetchall(
                "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL,"
                " lease_seconds = NULL WHERE holder = ? RETURNING id, lease_expires_at",
                (holder,),
            )
            for r in sorted(rows, key=lambda r: r["id"]):
                await self.append_event_in(
                    db, actor, "doc.lease_released", r["id"],
                    {"holder": holder, "reason": reason, "lease_expires_at": r["lease_expires_at"]},
                )
            return sorted(r["id"] for r in rows)

    async def lease_holders(self) -> list[str]:
        """Who holds a checkout now (expired leases included, until someone takes them)."""
        rows = await self.query("SELECT DISTINCT holder FROM documents WHERE holder IS NOT NULL ORDER BY holder")
        return [r[0] for r in rows]

    async def _not_holder(self, db: Transaction, doc_id: str, actor: str, action: str) -> Exception:
        """Why ``actor`` could not ``action`` (check in / cancel the checkout of) ``doc_id``."""
        row = await doc_row(db, doc_id)
        if row["state"] not in wf.EDITABLE:
            return wf.illegal(doc_id, row["state"], action)
        if row["holder"] is None:
            return duty.Refused(duty.HOLDER_ONLY, f"cannot {action} {doc_id}: it is not checked out; check it out first")
        return duty.Refused(
            duty.HOLDER_ONLY,
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
        async with self.recording_refusals(actor, doc_id, "check in"), self.write() as db:
            await check_version_in(db, self.quotas, actor, content, now)
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
            await self.append_event_in(
                db, actor, "doc.checkin", doc_id,
                {"version": number, "note": note, "size": len(content.encode())},
            )
            return doc_from_row(await doc_row(db, doc_id), content=content)

    async def cancel_checkout(self, doc_id: str, actor: str) -> None:
        """Give the lease back without a new version (holder only)."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        async with self.recording_refusals(actor, doc_id, "cancel the checkout"), self.write() as db:
            rows = await db.execute_fetchall(
                "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND holder = ? RETURNING id",
                (doc_id, actor),
            )
            if not rows:
                raise await self._not_holder(db, doc_id, actor, "cancel the checkout of")
            await self.append_event_in(db, actor, "doc.checkout_cancelled", doc_id, {})

    async def break_lock(self, doc_id: str, actor: str) -> None:
        """Operator only: drop whoever holds the checkout (expired or not)."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        async with self.recording_refusals(actor, doc_id, "break the lock"), self.write() as db:
            if actor != OPERATOR:
                raise duty.Refused(
                    duty.OPERATOR_ONLY, f"only the operator can break a lock, not {actor}; ask the holder to check in"
                )
            row = await doc_row(db, doc_id)
            if row["holder"] is None:
                raise InvalidInput(f"{doc_id} is not checked out; there is no lock to break")
            await db.execute(
                "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL"
                " WHERE id = ? AND holder = ?",
                (doc_id, row["holder"]),
            )
            await self.append_event_in(
                db, actor, "doc.lock_broken", doc_id,
                {"holder": row["holder"], "lease_expires_at": row["lease_expires_at"],
                 "expired": row["lease_expires_at"] <= time.time()},
            )
