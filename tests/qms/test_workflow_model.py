"""The workflow against an independent model: hypothesis drives random sequences of
actions by random people; every outcome (new state, or which error) must match the
model, and every refused action must leave the database byte-for-byte unchanged."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from qms import Store
from qms.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied

from store_dump import dump

PEOPLE = ("alice", "bob", "carol", "operator")
AUTHOR = "alice"

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

    @initialize(executable=st.booleans())
    def create(self, executable):
        self.executable = executable
        self.doc = self.run(self.store.create_document(AUTHOR, "CR" if executable else "SOP", "modelled")).id
        self.state, self.holder, self.version = "DRAFT", None, 1
        self.open: dict[str, str] = {}  # person -> open task kind
        self.outcomes: list[str] = []
        self.last_reviewers: list[str] = []

    def attempt(self, coro, expected_error):
        """Run the action; it must fail with ``expected_error`` (and change nothing) or succeed."""
        before = dump(self.path)
        if expected_error is None:
            self.run(coro)
            return
        with pytest.raises(expected_error):
            self.run(coro)
        assert dump(self.path) == before

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
            self.version += 0 if cancel else 1

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
               else Conflict if kind == "review" and self.holder is not None else None)
        self.attempt(self.store.route(self.doc, who, kind, to), err)
        if err is None:
            self.state = table[self.state]
            self.open = {p: kind for p in to}
            self.outcomes = []
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
               else PermissionDenied if self.open.get(who) != "review" else None)
        self.attempt(self.store.review(self.doc, who, outcome, "because"), err)
        if err is None:
            del self.open[who]
            self.outcomes.append(outcome)
            if not self.open:
                done, back = REVIEWED[self.state]
                self.state = back if "request-updates" in self.outcomes else done

    @rule(data=st.data())
    def approve(self, data):
        who = self.pick(data, "approval")
        table = APPROVED_EXEC if self.executable else APPROVED_NONEXEC
        err = (IllegalTransition if self.state not in table
               else PermissionDenied if self.open.get(who) != "approval" else None)
        self.attempt(self.store.approve(self.doc, who), err)
        if err is None:
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
            self.state = REJECTED[self.state]
            self.open = {p: "review" for p in self.last_reviewers}
            self.outcomes = []

    @rule(who=people, step=st.sampled_from(sorted(STEPS)))
    def author_step(self, who, step):
        src, dst = STEPS[step]
        err = (IllegalTransition if self.state != src
               else PermissionDenied if who not in (AUTHOR, "operator") else None)
        self.attempt(getattr(self.store, step)(self.doc, who), err)
        if err is None:
            self.state = dst

    @rule(data=st.data())
    def advance(self, data):
        """A step that moves the document on (random rules alone rarely get far)."""
        who = data.draw(people)
        if self.state in ("DRAFT", "IN_EXECUTION"):
            if self.holder is not None:
                self.checkin_or_cancel(self.holder, cancel=False)
            else:
                self.route(who, data.draw(groups), "review")
        elif self.state in ("REVIEWED", "POST_REVIEWED"):
            self.route(who, data.draw(groups), "approval")
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
