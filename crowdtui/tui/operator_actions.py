"""The operator's actions on messages, held chats, documents and the approval queue: the
keys pick an action, the views own it. Part of ``CrowdApp``."""

from __future__ import annotations

from functools import partial
from typing import Awaitable, Callable

from crowdtui.tui.doc_actions import DocActions
from crowdtui.tui.screens.compose import ComposeScreen, Draft
from crowdtui.tui.screens.search import SearchScreen
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.documents_view import DocumentsView
from crowdtui.tui.widgets.inbox_view import InboxView
from crowdtui.tui.widgets.onboarding_view import OnboardingView
from qms.names import OPERATOR


class OperatorActions:
    """Part of ``CrowdApp`` (its state is set up in ``CrowdApp.__init__``)."""

    # --- inbox
    def _after_send(self, draft: Draft | None) -> None:
        if draft is not None:
            self.notify(inert(f"sent to {', '.join(draft.to)}"), markup=False, timeout=3)
            self.refresh_inbox()

    def action_compose(self, to: str | None = None) -> None:
        if to is None:
            to = self.selected if self.selected and self.selected != OPERATOR else ""
        self.push_screen(ComposeScreen(to=to, send=self.send_draft,
                                       title="New message from the operator"),
                         self._after_send)

    def action_reply(self) -> None:
        self._main.query_one(InboxView).reply(self.send_draft, self._after_send)

    def action_broadcast(self) -> None:
        names = [r.name for r in self.rows if not r.is_operator]
        if not names:
            self.notify("no agents to broadcast to", severity="warning", markup=False)
            return
        self.push_screen(ComposeScreen(choices=names, selected=names, send=self.send_draft,
                                       title="Broadcast: pick the agents"), self._after_send)

    async def action_mark_read(self) -> None:
        await self._main.query_one(InboxView).mark_read()

    # --- documents and held chats: the views own the actions; the keys pick one
    def approve_held(self, chat: str | None = None) -> None:
        """Approve (route to an agent) the highlighted held chat, or ``chat``."""
        self._held(self._main.query_one(OnboardingView).approve, chat)

    def deny_held(self, chat: str | None = None) -> None:
        """Deny (drop the messages of) the highlighted held chat, or ``chat``."""
        self._held(self._main.query_one(OnboardingView).deny, chat)

    def _held(self, act: Callable[[str], Awaitable[bool]], chat: str | None) -> None:
        if chat is None:
            hold = self._main.query_one(OnboardingView).current
            if hold is None:
                self.notify("no chat is held: open Held (6) when one waits", severity="warning",
                            markup=False)
                return
            chat = hold.chat
        self.run_worker(partial(act, chat), group="held-action", exclusive=True, exit_on_error=False)

    def action_doc(self, action: str) -> None:
        """A document action (``doc_actions``) on the highlighted document of the board."""
        if self.active_view != "documents":
            self.notify("open Documents (3) and pick a document first", severity="warning", markup=False)
            return
        doc = self._main.query_one(DocumentsView).current
        self.run_worker(partial(DocActions(self).run, action, getattr(doc, "id", None)),
                        group="doc-action", exclusive=True, exit_on_error=False)

    def action_approve(self) -> None:
        self.approve_held() if self.active_view == "held" else self.action_doc("approve")

    def action_reject(self) -> None:
        self.deny_held() if self.active_view == "held" else self.action_doc("reject")

    def action_search(self) -> None:
        self.push_screen(SearchScreen())

    def action_approvals(self) -> None:
        """The approval queue: every agent's permission requests, one screen."""
        from crowdtui.tui.screens.approvals import ApprovalsScreen

        if not isinstance(self.screen, ApprovalsScreen):
            self.push_screen(ApprovalsScreen())

