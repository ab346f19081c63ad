"""The console's store work: following the events table (one EventFollower), the rows,
the views that read the store (inbox, documents, held chats), and the operator's writes."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.css.query import NoMatches
from textual.widgets import TabbedContent

from crowdtui.tui.closing import quiet_when_closing
from crowdtui.tui.crew import merge_rows
from crowdtui.tui.messages import CrewChanged, EventsArrived
from crowdtui.tui.screens.compose import Draft
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.documents_view import DocumentsView
from crowdtui.tui.widgets.inbox_view import InboxView
from crowdtui.tui.widgets.onboarding_view import OnboardingView
from crowdtui.tui.widgets.store_table import StoreTableView
from qms.follow import EventFollower
from qms.names import OPERATOR

#: event kinds (before the dot) after which the held chats are read again
HELD_KINDS = {"onboard", "chat", "route", "inbound"}


class StoreWork:
    """Part of ``CrowdApp`` (its state is set up in ``CrowdApp.__init__``)."""

    _events: EventFollower | None = None

    @work(exclusive=True, group="poll", exit_on_error=False)
    async def poll_store(self) -> None:
        """Follow the store: new events feed Activity and trigger a refresh of what changed.

        The store is read only after its files changed (a stat per tick, see StoreSignal);
        the rows are read again with each batch, and at least every ``rows_interval``."""
        async for events in self._events:  # a busy store is retried on the next tick
            if events:
                self.post_message(EventsArrived(events))
            await self.refresh_rows()

    def follow_events(self, after: int) -> EventFollower:
        """The console's one event follower, from ``after`` (it shows the backlog)."""
        self._events = EventFollower(
            self.store, after, interval=self.poll_interval, heartbeat=self.rows_interval,
            changed=lambda: self._store_signal is None or self._store_signal.changed(time.monotonic()),
            on_error=lambda exc: self.log.warning(f"poll: {exc}"))
        return self._events

    @property
    def _last_event_id(self) -> int:
        """The newest event the console has read."""
        return (self._events.last or 0) if self._events is not None else 0

    @work(exclusive=True, group="rows", exit_on_error=False)
    async def refresh_rows_soon(self) -> None:
        """Read the rows again in a worker (a newer call replaces one still waiting)."""
        await self.refresh_rows()

    async def refresh_rows(self) -> None:
        try:
            agents = await self.store.list_agents()
            unread = await self.store.unread_counts()
        except Exception as exc:
            self.log.warning(f"refresh: {exc}")
            return
        rows = merge_rows(agents, roster=self.roster, containers=self.containers,
                          unread=unread, stats=self.stats if self.live_stats else {},
                          attention=self.attention, permissions=self.permission_counts)
        self.post_message(CrewChanged(rows))

    @quiet_when_closing
    def on_events_arrived(self, message: EventsArrived) -> None:
        try:
            self._main.query_one(ActivityView).add_events(message.events)
        except NoMatches:  # closing down
            return
        if self.runtime is not None and any(e.kind == "agent.state" for e in message.events):
            self.refresh_containers()  # the engine said something changed: look now
        for e in message.events:  # the state follower's word on the Docker engine
            if e.kind == "engine.unreachable":
                self.engine_down = "since " + time.strftime("%H:%M:%S", time.localtime(e.at))
            elif e.kind == "engine.reachable":
                self.engine_down = None
        self._status()
        kinds = {str(e.kind).split(".", 1)[0] for e in message.events}
        if "message" in kinds:
            self.refresh_inbox()
        if "doc" in kinds:
            self.refresh_documents()
        if kinds & HELD_KINDS:
            self.refresh_held()
        if "permission" in kinds:
            self.refresh_permissions()
        for view in self._main.query(StoreTableView):
            if view.KINDS & kinds and view.region.area:  # hidden ones reload when shown
                view.reload()

    @work(exclusive=True, group="inbox", exit_on_error=False)
    async def refresh_inbox(self) -> None:
        if self.active_view != "inbox":
            return  # hidden: showing the tab refreshes it
        owner = self._agent_scope()
        if owner is None:
            names = [r.name for r in self.rows] or [OPERATOR]
            msgs: list[Any] = []
            for n in names:
                msgs.extend(await self.store.inbox(n, limit=100))
            msgs.sort(key=lambda m: m.created_at)
        else:
            msgs = await self.store.inbox(owner, limit=200)
        self._main.query_one(InboxView).show(owner, msgs)

    @work(exclusive=True, group="documents", exit_on_error=False)
    async def refresh_documents(self) -> None:
        if self.active_view != "documents":
            return  # hidden: showing the tab refreshes it
        docs = await self.store.list_documents()
        tasks = {t.doc_id: t.kind for t in await self.store.pending_tasks(OPERATOR)}
        self._main.query_one(DocumentsView).show(docs, tasks, self._agent_scope())

    @work(exclusive=True, group="held", exit_on_error=False)
    async def refresh_held(self) -> None:
        from crowdtui.dispatch.onboarding import list_holds

        # a busy store fails the worker (the app says so); the next event tries again
        self.show_holds(await list_holds(self.store))

    @quiet_when_closing
    def show_holds(self, holds: list[Any]) -> None:
        self.holds = holds
        self._main.query_one(OnboardingView).show(holds)
        tabs = self._main.query_one(TabbedContent)
        tabs.get_tab("view-held").label = f"6 Held ({len(holds)})" if holds else "6 Held"
        self._status()

    @work(exclusive=True, group="permissions", exit_on_error=False)
    async def refresh_permissions(self) -> None:
        """Read the approval queue again (requests past their time are expired first)."""
        from crowdtui.hub.approvals import pending_requests

        self.show_permissions(await pending_requests(self.store))

    @quiet_when_closing
    def show_permissions(self, requests: list[Any]) -> None:
        """The queue as read: the status bar's count, the agents that float up, the
        Approvals screen if open; a bell and a note for each request not seen before."""
        from crowdtui.tui.screens.approvals import ApprovalsScreen

        known = {r.id for r in self.permission_requests}
        first = not self._permissions_read
        self._permissions_read = True
        self.permission_requests = list(requests)
        counts: dict[str, int] = {}
        for r in requests:
            counts[r.agent] = counts.get(r.agent, 0) + 1
        self.permission_counts = counts
        new = [r for r in requests if r.id not in known]
        if new and not first:
            for r in new[:3]:
                self.notify(inert(f"{r.agent} asks permission for {r.tool}: {r.title} (P answers)"),
                            title="approval", severity="warning", markup=False)
            self.bell()
        for screen in self.screen_stack:
            if isinstance(screen, ApprovalsScreen):
                screen.show(requests)
        self._status()
        self.refresh_rows_soon()

    async def send_draft(self, draft: Draft) -> None:
        """Send as the operator; raises (with the store's one-line reason) on failure."""
        try:
            for to in draft.to:
                await self.store.send_message(OPERATOR, to, draft.body, priority=draft.priority,
                                              thread=draft.thread)
        except Exception as exc:
            self.store_wrote(exc)
            raise
        self.store_wrote(None)

    def store_wrote(self, error: BaseException | None) -> None:
        """How the console's last write went: a store that cannot take writes (full disk,
        read-only) stays in the status bar until a write goes through again."""
        from qms.errors import StoreUnavailable

        if error is None:
            self.store_problem = None
        elif isinstance(error, StoreUnavailable):
            self.store_problem = str(error).split(": ", 1)[-1]
        self._status()
