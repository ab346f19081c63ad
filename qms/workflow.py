"""The document state machine: which action is allowed in which state, and where it leads.

Non-executable: DRAFT → IN_REVIEW → REVIEWED → IN_APPROVAL → EFFECTIVE → RETIRED.
Executable add a second cycle: … IN_APPROVAL → PRE_APPROVED → IN_EXECUTION →
POST_REVIEW → POST_REVIEWED → POST_APPROVAL → POST_APPROVED → CLOSED.
"""

from __future__ import annotations

from qms.errors import IllegalTransition

DRAFT = "DRAFT"
IN_REVIEW = "IN_REVIEW"
REVIEWED = "REVIEWED"
IN_APPROVAL = "IN_APPROVAL"
EFFECTIVE = "EFFECTIVE"
RETIRED = "RETIRED"
PRE_APPROVED = "PRE_APPROVED"
IN_EXECUTION = "IN_EXECUTION"
POST_REVIEW = "POST_REVIEW"
POST_REVIEWED = "POST_REVIEWED"
POST_APPROVAL = "POST_APPROVAL"
POST_APPROVED = "POST_APPROVED"
CLOSED = "CLOSED"

STATES = (
    DRAFT, IN_REVIEW, REVIEWED, IN_APPROVAL, EFFECTIVE, RETIRED, PRE_APPROVED, IN_EXECUTION,
    POST_REVIEW, POST_REVIEWED, POST_APPROVAL, POST_APPROVED, CLOSED,
)
EDITABLE = (DRAFT, IN_EXECUTION)  # checkout / checkin / cancel allowed

# action -> {from state: to state}; review/approve/reject targets depend on the outcome
ROUTE_REVIEW = {DRAFT: IN_REVIEW, IN_EXECUTION: POST_REVIEW}
ROUTE_APPROVAL = {REVIEWED: IN_APPROVAL, POST_REVIEWED: POST_APPROVAL}
REVIEW_DONE = {IN_REVIEW: REVIEWED, POST_REVIEW: POST_REVIEWED}  # every reviewer recommended
REVIEW_UPDATES = {IN_REVIEW: DRAFT, POST_REVIEW: IN_EXECUTION}  # any request-updates
APPROVE_DONE_NONEXEC = {IN_APPROVAL: EFFECTIVE}
APPROVE_DONE_EXEC = {IN_APPROVAL: PRE_APPROVED, POST_APPROVAL: POST_APPROVED}
REJECT = {IN_APPROVAL: IN_REVIEW, POST_APPROVAL: POST_REVIEW}
RELEASE = {PRE_APPROVED: IN_EXECUTION}
CLOSE = {POST_APPROVED: CLOSED}
RETIRE = {EFFECTIVE: RETIRED}

# what a person can do next, by state (for error lines)
ALLOWED: dict[str, str] = {
    DRAFT: "check out / check in, or route for review",
    IN_REVIEW: "reviews by the assigned reviewers (recommend or request-updates)",
    REVIEWED: "route for approval",
    IN_APPROVAL: "approve or reject by the assigned approvers",
    EFFECTIVE: "retire",
    RETIRED: "nothing (it is retired)",
    PRE_APPROVED: "release for execution",
    IN_EXECUTION: "check out / check in, or route for post-review",
    POST_REVIEW: "reviews by the assigned reviewers (recommend or request-updates)",
    POST_REVIEWED: "route for approval",
    POST_APPROVAL: "approve or reject by the assigned approvers",
    POST_APPROVED: "close",
    CLOSED: "nothing (it is closed)",
}


def illegal(doc_id: str, state: str, action: str) -> IllegalTransition:
    return IllegalTransition(
        f"cannot {action} {doc_id}: it is {state}; allowed from {state}: {ALLOWED.get(state, 'nothing')}"
    )


def target(table: dict[str, str], doc_id: str, state: str, action: str) -> str:
    """The state ``action`` leads to from ``state``, or IllegalTransition."""
    try:
        return table[state]
    except KeyError:
        raise illegal(doc_id, state, action) from None


#: the author's editing steps, allowed while the state is EDITABLE
EDIT_ACTIONS = ("checkout", "checkin", "cancel")


def next_actions(state: str, executable: bool) -> list[str]:
    """Every action the state machine allows from ``state``, read from the tables above:
    ``checkout``/``checkin``/``cancel`` (EDITABLE), ``route-review``, ``route-approval``,
    ``review``, ``approve``, ``reject``, ``release``, ``close``, ``retire``. Who may take
    each (holder, author, assignees, operator) is ``qms.policy``'s business, not this list's."""
    approve = APPROVE_DONE_EXEC if executable else APPROVE_DONE_NONEXEC
    out: list[str] = list(EDIT_ACTIONS) if state in EDITABLE else []
    for action, table in (("route-review", ROUTE_REVIEW), ("route-approval", ROUTE_APPROVAL),
                          ("review", REVIEW_DONE), ("approve", approve), ("reject", REJECT),
                          ("release", RELEASE), ("close", CLOSE), ("retire", RETIRE)):
        if state in table:
            out.append(action)
    return out
