"""Who may do what to a document: separation of duties in the workflow, and the per-type policy.

The rules (one home: every door — hub, CLI, console — goes through the store, which
checks them inside the transaction of the action):

- ``only-owner-routes``: only the document's author (its owner) or the operator routes it
  for review or approval.
- ``author-may-not-review`` / ``author-may-not-approve``: whoever checked in the version
  under review or approval may not review or approve that version.
- ``reviewer-may-not-approve``: the reviewers and the approvers of a version differ
  within one cycle (pre-execution, or post-execution for executable types): someone who
  reviewed it may not approve it, someone who approved it may not review it.
- ``operator-approval``: a document the operator owns needs the operator's approval to
  become EFFECTIVE (or PRE_APPROVED / POST_APPROVED) — an agent's approval alone is not
  enough — unless the operator checked in the version being approved. On by default for
  every type; a workspace turns it off per type in ``crowd.toml``::

      [documents]            # defaults for every type
      operator_approval = true
      [documents.SPEC]       # one type
      operator_approval = false

A refusal is a ``Refused`` (a ``PermissionDenied``) naming its rule; the store records it
as a ``doc.refused`` event even though the action itself changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from qms import workflow as wf
from qms.errors import InvalidInput, PermissionDenied
from qms.names import OPERATOR, shown
from qms.writer import Transaction

ONLY_OWNER_ROUTES = "only-owner-routes"
AUTHOR_MAY_NOT_REVIEW = "author-may-not-review"
AUTHOR_MAY_NOT_APPROVE = "author-may-not-approve"
REVIEWER_MAY_NOT_APPROVE = "reviewer-may-not-approve"
OPERATOR_APPROVAL = "operator-approval"
# the older who-may rules, named for their doc.refused events
ASSIGNEES_ONLY = "assignees-only"
AUTHOR_OR_OPERATOR = "author-or-operator"
HOLDER_ONLY = "holder-only"
OPERATOR_ONLY = "operator-only"

CONFIG_KEYS = ("operator_approval",)
TYPE_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{0,15}")
POST_STATES = (wf.IN_EXECUTION, wf.POST_REVIEW, wf.POST_REVIEWED, wf.POST_APPROVAL, wf.POST_APPROVED)


class Refused(PermissionDenied):
    """A permission refusal naming the rule that refused it (``rule``)."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class DocPolicy:
    """The workspace's document policy: ``operator_approval`` for every type, and
    per-type overrides in ``types`` (type code -> operator_approval)."""

    operator_approval: bool = True
    types: Mapping[str, bool] = field(default_factory=dict)

    def operator_approval_for(self, doc_type: str) -> bool:
        return self.types.get(doc_type, self.operator_approval)

    @classmethod
    def from_config(cls, table: Any) -> "DocPolicy":
        """The policy from ``crowd.toml``'s ``[documents]`` table (None or {} = defaults)."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise InvalidInput("[documents] in crowd.toml must be a table; see the README's configuration table")
        default = cls.operator_approval
        types: dict[str, bool] = {}
        for key, value in table.items():
            if key == "operator_approval":
                default = _flag(value, "documents.operator_approval")
            elif isinstance(value, Mapping) and TYPE_CODE_RE.fullmatch(str(key)):
                for sub, flag in value.items():
                    if sub not in CONFIG_KEYS:
                        raise InvalidInput(
                            f"unknown key documents.{key}.{shown(sub)} in crowd.toml; the keys are: "
                            + ", ".join(CONFIG_KEYS)
                        )
                    types[str(key)] = _flag(flag, f"documents.{key}.{sub}")
            else:
                raise InvalidInput(
                    f"unknown key documents.{shown(key)} in crowd.toml: use operator_approval, or a "
                    "table named by a type code ([documents.SOP])"
                )
        return cls(operator_approval=default, types=types)


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{key} in crowd.toml must be true or false, not {shown(value)}")
    return value


DEFAULT_POLICY = DocPolicy()


def cycle_of(state: str) -> str:
    """``post`` for the execution cycle of executable types, else ``pre``."""
    return "post" if state in POST_STATES else "pre"


# ---- the checks (inside the action's write transaction) ---------------------------------


async def version_author(db: Transaction, doc_id: str, version: int) -> str:
    """Who checked in ``version`` (for version 1: who created the document)."""
    rows = await db.execute_fetchall(
        "SELECT author FROM doc_versions WHERE doc_id = ? AND number = ?", (doc_id, version)
    )
    return rows[0]["author"]


async def duties(db: Transaction, row, cycle: str) -> tuple[set[str], set[str]]:
    """(reviewers, approvers) who finished a task on the document's current version in
    ``cycle``; tasks from before migration 041 (no cycle) count for both cycles."""
    rows = await db.execute_fetchall(
        "SELECT kind, assignee FROM tasks WHERE doc_id = ? AND version = ? AND status = 'done'"
        " AND (cycle = ? OR cycle IS NULL)",
        (row["id"], row["version"], cycle),
    )
    reviewers = {r["assignee"] for r in rows if r["kind"] == "review"}
    approvers = {r["assignee"] for r in rows if r["kind"] == "approval"}
    return reviewers, approvers


def check_router(row, actor: str) -> None:
    """Only the document's author (owner) or the operator routes it."""
    if actor not in (row["author"], OPERATOR):
        owner = "the operator" if row["author"] == OPERATOR else f"its author ({row['author']}) or the operator"
        raise Refused(
            ONLY_OWNER_ROUTES,
            f"only {owner} can route {row['id']}, not {actor}; ask {row['author']} to route it",
        )


async def check_duty(db: Transaction, row, who: str, kind: str, *, acting: bool) -> None:
    """``who`` may take the ``kind`` ("review"/"approval") of the current version:
    not its author, and not on both sides (review and approval) in one cycle.
    ``acting`` words the refusal for the person acting rather than for a router."""
    doc_id, version = row["id"], row["version"]
    verb = "review" if kind == "review" else "approve"
    fix = ("ask the operator to reassign the task (`crowdtui doc reassign TASK --to NAME`)"
           if acting else "route it to someone else")
    if who == await version_author(db, doc_id, version):
        raise Refused(
            AUTHOR_MAY_NOT_REVIEW if kind == "review" else AUTHOR_MAY_NOT_APPROVE,
            f"{who} checked in version {version} of {doc_id} and may not {verb} it; {fix}",
        )
    reviewers, approvers = await duties(db, row, cycle_of(row["state"]))
    other, did = (approvers, "approved") if kind == "review" else (reviewers, "reviewed")
    if who in other:
        raise Refused(
            REVIEWER_MAY_NOT_APPROVE,
            f"{who} {did} version {version} of {doc_id} and may not also {verb} it "
            f"(reviewers and approvers differ); {fix}",
        )


async def needs_operator(db: Transaction, row, policy: DocPolicy) -> bool:
    """Whether approving the current version needs the operator's own approval."""
    return (
        row["author"] == OPERATOR
        and policy.operator_approval_for(row["doc_type"])
        and await version_author(db, row["id"], row["version"]) != OPERATOR
    )


def operator_approval_refused(row, what: str) -> Refused:
    return Refused(
        OPERATOR_APPROVAL,
        f"{row['id']} belongs to the operator and version {row['version']} was checked in by someone "
        f"else, so it needs the operator's approval: {what}",
    )
