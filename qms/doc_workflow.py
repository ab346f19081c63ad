"""The document workflow: routing, reviews, approvals, rejections and the author's steps,
with the separation of duties of ``qms.policy`` checked inside each transaction.

A refused action changes nothing; a refusal on permission grounds is recorded as a
``doc.refused`` event in a transaction of its own (the change itself rolled back).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from qms import policy as duty
from qms import workflow as wf
from qms.doc_rows import (
    MAX_ASSIGNEES, OUTCOMES, ROUTE_KINDS, check_comment, check_doc_id, doc_row, lease_active, utc_clock,
)
from qms.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from qms.events import EventsMixin
from qms.messages import MessagesMixin, check_id
from qms.models import Task
from qms.names import OPERATOR, shown, validate_name
from qms.registry import require_principal
from qms.writer import Transaction


class WorkflowMixin(MessagesMixin, EventsMixin):
    """Routing and the review/approval workflow. ``doc_policy`` is the workspace's
    ``qms.policy.DocPolicy`` (set it after opening the store; defaults otherwise)."""

    doc_policy: duty.DocPolicy = duty.DEFAULT_POLICY

    @asynccontextmanager
    async def recording_refusals(self, actor: str, subject: str, action: str) -> AsyncIterator[None]:
        """Wrap a document action: a permission refusal raised inside (its transaction rolled
        back) is recorded as a ``doc.refused`` event in a transaction of its own, then re-raised."""
        try:
            yield
        except PermissionDenied as exc:
            await self.append_event(
                actor, "doc.refused", subject,
                {"action": action, "rule": getattr(exc, "rule", "permission"), "reason": str(exc)[:500]},
            )
            raise

    async def _set_state(
        self, db: Transaction, doc_id: str, actor: str, old: str, new: str, *,
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
        await self.append_event_in(db, actor, "doc.state", doc_id, detail)

    async def _make_tasks(
        self, db: Transaction, row: sqlite3.Row, actor: str, kind: str,
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
            msg = await self.deliver_in(
                db, actor, who,
                f"Task: {verb.lower()} {doc_id} \"{row['title']}\" (version {row['version']}), "
                f"routed by {actor}; {how}.",
                priority="normal", thread=doc_id,
            )
            rows = await db.execute_fetchall(
                "INSERT INTO tasks (doc_id, kind, assignee, round, routed_by, created_at, message_id,"
                " version, cycle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (doc_id, kind, who, round, actor, now, msg.id, row["version"], duty.cycle_of(row["state"])),
            )
            ids.append(rows[0]["id"])
        return ids

    async def route(self, doc_id: str, actor: str, kind: str, assignees: list[str]) -> None:
        """Send for review (DRAFT/IN_EXECUTION) or approval (REVIEWED/POST_REVIEWED).

        Each assignee (a registered agent or the operator) gets a task and an inbox message.
        Only the author or the operator routes; the version's author is never an assignee,
        nor a reviewer an approver; the operator's documents need the operator's approval.
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
        async with self.recording_refusals(actor, doc_id, f"route for {kind}"), self.write() as db:
            row = await doc_row(db, doc_id)
            new = wf.target(table, doc_id, row["state"], f"route for {kind}")
            duty.check_router(row, actor)
            if lease_active(row, now):
                raise Conflict(
                    f"{doc_id} is checked out by {row['holder']} until {utc_clock(row['lease_expires_at'])}; "
                    "check it in or cancel the checkout before routing"
                )
            for who in people:
                await require_principal(db, who)
                await duty.check_duty(db, row, who, kind, acting=False)
            if kind == "approval" and OPERATOR not in people and await duty.needs_operator(db, row, self.doc_policy):
                raise duty.operator_approval_refused(row, "add operator to the approvers")
            if row["holder"] is not None:  # an expired lease: drop it
                await db.execute(
                    "UPDATE documents SET holder = NULL, taken_at = NULL, lease_expires_at = NULL WHERE id = ?",
                    (doc_id,),
                )
            round_no = row["round"] + 1
            task_ids = await self._make_tasks(db, row, actor, kind, people, round_no)
            await self.append_event_in(
                db, actor, "doc.routed", doc_id,
                {"kind": kind, "assignees": people, "round": round_no, "version": row["version"],
                 "tasks": task_ids},
            )
            await self._set_state(db, doc_id, actor, row["state"], new, round=round_no)

    async def _close_task(
        self, db: Transaction, row: sqlite3.Row, actor: str, kind: str,
        outcome: str, comment: str,
    ) -> int:
        rows = await db.execute_fetchall(
            "UPDATE tasks SET status = 'done', outcome = ?, comment = ?, done_at = ?"
            " WHERE doc_id = ? AND kind = ? AND assignee = ? AND round = ? AND status = 'open'"
            " RETURNING id",
            (outcome, comment, time.time(), row["id"], kind, actor, row["round"]),
        )
        if not rows:
            raise duty.Refused(
                duty.ASSIGNEES_ONLY,
                f"{actor} has no open {kind} task for {row['id']}; only the assigned "
                f"{'reviewers' if kind == 'review' else 'approvers'} can do this"
            )
        return rows[0]["id"]

    async def _open_left(self, db: Transaction, doc_id: str, kind: str, round_no: int) -> int:
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
        async with self.recording_refusals(actor, doc_id, "review"), self.write() as db:
            row = await doc_row(db, doc_id)
            wf.target(wf.REVIEW_DONE, doc_id, row["state"], "review")
            task_id = await self._close_task(db, row, actor, "review", outcome, comment)
            await duty.check_duty(db, row, actor, "review", acting=True)
            await self.append_event_in(
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
        async with self.recording_refusals(actor, doc_id, "approve"), self.write() as db:
            row = await doc_row(db, doc_id)
            table = wf.APPROVE_DONE_EXEC if row["executable"] else wf.APPROVE_DONE_NONEXEC
            new = wf.target(table, doc_id, row["state"], "approve")
            task_id = await self._close_task(db, row, actor, "approval", "approved", comment)
            await duty.check_duty(db, row, actor, "approval", acting=True)
            await self.append_event_in(
                db, actor, "doc.approved", doc_id,
                {"comment": comment, "round": row["round"], "task": task_id, "version": row["version"]},
            )
            if not await self._open_left(db, doc_id, "approval", row["round"]):
                if await duty.needs_operator(db, row, self.doc_policy) and not await db.execute_fetchall(
                    "SELECT 1 FROM tasks WHERE doc_id = ? AND kind = 'approval' AND round = ?"
                    " AND assignee = ? AND outcome = 'approved'",
                    (doc_id, row["round"], OPERATOR),
                ):
                    raise duty.operator_approval_refused(
                        row, f"it cannot become {new} without it; reject it so the author can route it "
                        "for approval to the operator as well"
                    )
                await self._set_state(db, doc_id, actor, row["state"], new)

    async def reject(self, doc_id: str, actor: str, comment: str) -> None:
        """An approver sends the document back to review: other approval tasks are cancelled
        and the last review round's reviewers get fresh review tasks."""
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        comment = check_comment(comment, required=True)
        async with self.recording_refusals(actor, doc_id, "reject"), self.write() as db:
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
            await self.append_event_in(
                db, actor, "doc.rejected", doc_id,
                {"comment": comment, "round": row["round"], "task": task_id, "cancelled_tasks": cancelled,
                 "version": row["version"]},
            )
            round_no = row["round"] + 1
            task_ids = await self._make_tasks(db, row, actor, "review", reviewers, round_no)
            await self.append_event_in(
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
        found = await self.query("SELECT doc_id FROM tasks WHERE id = ?", (task_id,))
        subject = found[0]["doc_id"] if found else f"task {task_id}"
        async with self.recording_refusals(actor, subject, "reassign a task"), self.write() as db:
            if actor != OPERATOR:
                raise duty.Refused(duty.OPERATOR_ONLY, f"only the operator can reassign a task, not {actor}")
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
            row = await doc_row(db, task["doc_id"])
            await duty.check_duty(db, row, to, task["kind"], acting=False)
            if (task["kind"] == "approval" and task["assignee"] == OPERATOR
                    and await duty.needs_operator(db, row, self.doc_policy)):
                raise duty.operator_approval_refused(row, "the operator's approval task stays the operator's")
            await db.execute(
                "UPDATE tasks SET status = 'cancelled', outcome = 'reassigned', done_at = ? WHERE id = ?",
                (time.time(), task_id),
            )
            [new_id] = await self._make_tasks(db, row, actor, task["kind"], [to], task["round"])
            await self.append_event_in(
                db, actor, "doc.task_reassigned", task["doc_id"],
                {"task": task_id, "new_task": new_id, "kind": task["kind"], "from": task["assignee"],
                 "to": to, "round": task["round"]},
            )
            return Task(new_id, row["id"], task["kind"], to, time.time(), row["title"], row["state"],
                        actor, task["round"])

    async def _author_step(self, doc_id: str, actor: str, table: dict[str, str], action: str) -> None:
        doc_id = check_doc_id(doc_id)
        validate_name(actor)
        async with self.recording_refusals(actor, doc_id, action), self.write() as db:
            row = await doc_row(db, doc_id)
            new = wf.target(table, doc_id, row["state"], action)
            if actor not in (row["author"], OPERATOR):
                raise duty.Refused(
                    duty.AUTHOR_OR_OPERATOR,
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
