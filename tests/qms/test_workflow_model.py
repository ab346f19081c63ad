"""The workflow against an independent model: hypothesis drives random sequences of
actions by random people; every outcome (new state, or which error) must match the
model, and every refused action must leave the database byte-for-byte unchanged (but
for the doc.refused event a permission refusal records).

The model knows the separation of duties: only the author or the operator routes; whoever
checked in the current version neither reviews nor approves it; within one cycle
(pre/post execution) nobody both reviews and approves a version; a document the
operator owns needs the operator's approval unless the operator checked in the version."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from qms import Store
from qms.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied

from store_dump import dump

PEOPLE = ("alice", "bob", "carol", "operator")
POST = ("IN_EXECUTION", "POST_REVIEW", "POST_REVIEWED", "POST_APPROVAL", "POST_APPROVED")

REVIEW_FROM = {"DRAFT": "IN_REVIEW", "IN_EXECUTION": "POST_REVIEW"}
APPROVAL_FROM = {"REVIEWED": "IN_APPROVAL", "POST_REVIEWED": "POST_APPROVAL"}
REVIEWED = {"IN_REVIEW": ("REVIEWED", "DRAFT"), "POST_REVIEW": ("POST_REVIEWED", "IN_EXECUTION")}
APPROVED_EXEC = {"IN_APPROVAL": "PRE_APPROVED", "POST_APPROVAL": "POST_APPROVED"}
APPROVED_NONEXEC = {"IN_APPROVAL": "EFFECTIVE"}
REJECTED = {"IN_APPROVAL": "IN_REVIEW", "POST_APPROVAL": "POST_REVIEW"}
STEPS = {"release": ("PRE_APPROVED", "IN_EXECUTION"), "close_document": ("POST_APPROVED", "CLOSED"),
         "retire": ("EFFECTIVE", "RETIRED")}

people = st.sampled_from(PEOPLE)
groups = st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True)


class Workflow(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile
        from pathlib import Path

        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "crowd.db"
        self.loop = asyncio.new_event_loop()
        self.store = self.run(Store.open(self.path))
        for name in PEOPLE[:-1]:
            self.run(self.store.upsert_agent(name, path=name, tier=0))

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self):
        self.run(self.store.close())
        self.loop.close()
        self.dir.cleanup()

    @initialize(executable=st.booleans(), author=st.sampled_from(["alice", "operator"]))
    def create(self, executable, author):
        self.executable = executable
        self.author = author
        self.doc = self.run(self.store.create_document(author, "CR" if executable else "SOP", "modelled")).id
        self.state, self.holder, self.version = "DRAFT", None, 1
        self.wrote = {1: author}  # version -> who checked it in
        self.done: set[tuple[int, str, str, str]] = set()  # (version, cycle, kind, person) of finished tasks
        self.operator_approved = False  # in the open approval round
        self.open: dict[str, str] = {}  # person -> open task kind
        self.outcomes: list[str] = []
        self.last_reviewers: list[str] = []

    def attempt(self, coro, expected_error):
        """Run the action; it must fail with ``expected_error`` (and change nothing but, for a
        permission refusal, add one doc.refused event) or succeed."""
        before = dump(self.path, without_refusals=True)
        refused = self.refusals()
        if expected_error is None:
            self.run(coro)
            return
        with pytest.raises(expected_error) as info:
            self.run(coro)
        assert dump(self.path, without_refusals=True) == before
        expected = refused + (1 if isinstance(info.value, PermissionDenied) else 0)
        assert self.refusals() == expected, str(info.value)

    def refusals(self) -> int:
        return len(self.run(self.store.events_after(0, limit=100_000, kinds=["doc.refused"])))

    # ---- the separation of duties, written out independently of qms.policy ---------------

    def cycle(self) -> str:
        return "post" if self.state in POST else "pre"

    def did(self, kind: str) -> set[str]:
        return {p for v, c, k, p in self.done if v == self.version and c == self.cycle() and k == kind}

    def may_not(self, who: str, kind: str) -> bool:
        """``who`` may not take the ``kind`` duty of the current version."""
        other = "approval" if kind == "review" else "review"
        return who == self.wrote[self.version] or who in self.did(other)

    def needs_operator(self) -> bool:
        return self.author == "operator" and self.wrote[self.version] != "operator"

    # ---- rules: compute the model's answer, then compare with the store ----------------

    @rule(who=people)
    def checkout(self, who):
        err = (IllegalTransition if self.state not in ("DRAFT", "IN_EXECUTION")
               else Conflict if self.holder not in (None, who) else None)
        self.attempt(self.store.checkout(self.doc, who), err)
        if err is None:
            self.holder = who

    @rule(who=people, cancel=st.booleans())
    def checkin_or_cancel(self, who, cancel):
        err = (IllegalTransition if self.state not in ("DRAFT", "IN_EXECUTION")
               else PermissionDenied if self.holder != who else None)
        call = (self.store.cancel_checkout(self.doc, who) if cancel
                else self.store.checkin(self.doc, who, f"v{self.version + 1}"))
        self.attempt(call, err)
        if err is None:
            self.holder = None
            if not cancel:
                self.version += 1
                self.wrote[self.version] = who

    @rule(who=people)
    def break_lock(self, who):
        err = PermissionDenied if who != "operator" else InvalidInput if self.holder is None else None
        self.attempt(self.store.break_lock(self.doc, who), err)
        if err is None:
            self.holder = None

    @rule(who=people, to=groups, kind=st.sampled_from(["review", "approval"]))
    def route(self, who, to, kind):
        table = REVIEW_FROM if kind == "review" else APPROVAL_FROM
        err = (IllegalTransition if self.state not in table
               else PermissionDenied if who not in (self.author, "operator")
               else Conflict if kind == "review" and self.holder is not None
               else PermissionDenied if any(self.may_not(p, kind) for p in to)
               else PermissionDenied if kind == "approval" and self.needs_operator() and "operator" not in to
               else None)
        self.attempt(self.store.route(self.doc, who, kind, to), err)
        if err is None:
            self.state = table[self.state]
            self.open = {p: kind for p in to}
            self.outcomes = []
            self.operator_approved = False
            if kind == "review":
                self.last_reviewers = list(to)

    def pick(self, data, kind: str) -> str:
        """Mostly someone with an open task of ``kind`` (so the workflow gets somewhere)."""
        holders = sorted(p for p, k in self.open.items() if k == kind)
        if holders and data.draw(st.integers(0, 4)) > 0:
            return data.draw(st.sampled_from(holders))
        return data.draw(people)

    @rule(data=st.data(), outcome=st.sampled_from(["recommend"] * 3 + ["request-updates"]))
    def review(self, data, outcome):
        who = self.pick(data, "review")
        err = (IllegalTransition if self.state not in REVIEWED
               else PermissionDenied if self.open.get(who) != "review"
               else PermissionDenied if self.may_not(who, "review") else None)
        self.attempt(self.store.review(self.doc, who, outcome, "because"), err)
        if err is None:
            self.done.add((self.version, self.cycle(), "review", who))
            del self.open[who]
            self.outcomes.append(outcome)
            if not self.open:
                done, back = REVIEWED[self.state]
                self.state = back if "request-updates" in self.outcomes else done

    @rule(data=st.data())
    def approve(self, data):
        who = self.pick(data, "approval")
        table = APPROVED_EXEC if self.executable else APPROVED_NONEXEC
        last = set(self.open) == {who}
        err = (IllegalTransition if self.state not in table
               else PermissionDenied if self.open.get(who) != "approval"
               else PermissionDenied if self.may_not(who, "approval")
               else PermissionDenied if last and self.needs_operator() and not (self.operator_approved or who == "operator")
               else None)
        self.attempt(self.store.approve(self.doc, who), err)
        if err is None:
            self.done.add((self.version, self.cycle(), "approval", who))
            self.operator_approved |= who == "operator"
            del self.open[who]
            if not self.open:
                self.state = table[self.state]

    @rule(data=st.data())
    def reject(self, data):
        who = self.pick(data, "approval")
        err = (IllegalTransition if self.state not in REJECTED
               else PermissionDenied if self.open.get(who) != "approval" else None)
        self.attempt(self.store.reject(self.doc, who, "no"), err)
        if err is None:
            self.done.add((self.version, self.cycle(), "approval", who))
            self.state = REJECTED[self.state]
            self.open = {p: "review" for p in self.last_reviewers}
            self.outcomes = []

    @rule(who=people, step=st.sampled_from(sorted(STEPS)))
    def author_step(self, who, step):
        src, dst = STEPS[step]
        err = (IllegalTransition if self.state != src
               else PermissionDenied if who not in (self.author, "operator") else None)
        self.attempt(getattr(self.store, step)(self.doc, who), err)
        if err is None:
            self.state = dst

    def router(self, data) -> str:
        """Mostly someone allowed to route (the author or the operator)."""
        return data.draw(st.sampled_from([self.author, "operator"])) if data.draw(st.integers(0, 4)) else data.draw(people)

    def assignees(self, data, kind: str) -> list[str]:
        """Mostly people allowed to take ``kind`` (and the operator when the rule wants it)."""
        if not data.draw(st.integers(0, 9)):
            return data.draw(groups)
        fit = [p for p in PEOPLE if not self.may_not(p, kind)]
        if not fit:
            return data.draw(groups)
        chosen = data.draw(st.lists(st.sampled_from(fit), min_size=1, max_size=3, unique=True))
        if kind == "review" and len(chosen) > 1 and set(chosen) == set(fit):
            chosen.pop()  # leave someone who may approve
        if kind == "approval" and self.needs_operator() and "operator" in fit and "operator" not in chosen:
            chosen.append("operator")
        return chosen

    @rule(data=st.data())
    def advance(self, data):
        """A step that moves the document on (random rules alone rarely get far)."""
        who = data.draw(people)
        if self.state in ("DRAFT", "IN_EXECUTION"):
            if self.holder is not None:
                self.checkin_or_cancel(self.holder, cancel=False)
            else:
                self.route(self.router(data), self.assignees(data, "review"), "review")
        elif self.state in ("REVIEWED", "POST_REVIEWED"):
            self.route(self.router(data), self.assignees(data, "approval"), "approval")
        elif self.state in ("IN_REVIEW", "POST_REVIEW") and self.open:
            self.review(data, data.draw(st.sampled_from(["recommend"] * 5 + ["request-updates"])))
        elif self.state in ("IN_APPROVAL", "POST_APPROVAL") and self.open:
            self.approve(data) if data.draw(st.integers(0, 5)) else self.reject(data)
        else:
            step = {"PRE_APPROVED": "release", "POST_APPROVED": "close_document", "EFFECTIVE": "retire"}
            self.author_step(who, step.get(self.state, "retire"))

    # more weight: hypothesis picks among rules uniformly
    advance_2 = advance
    advance_3 = advance
    advance_4 = advance

    @invariant()
    def store_matches_model(self):
        if not hasattr(self, "doc"):
            return
        doc = self.run(self.store.get_document(self.doc))
        event(f"reached {self.state}")
        assert (doc.state, doc.holder, doc.version) == (self.state, self.holder, self.version)
        for p in PEOPLE:
            tasks = self.run(self.store.pending_tasks(p))
            assert [t.kind for t in tasks] == ([self.open[p]] if p in self.open else [])


TestWorkflowModel = Workflow.TestCase
TestWorkflowModel.settings = settings(max_examples=30, stateful_step_count=60, deadline=None)
