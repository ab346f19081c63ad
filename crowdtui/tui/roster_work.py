"""The console's roster and hub: the roster read from agents/ (and watched), synced into
the registry; the console's own hub and its policies."""

from __future__ import annotations

from typing import Any

from textual import work

from crowdtui.tui import backend
from crowdtui.tui.closing import quiet_when_closing
from crowdtui.tui.messages import HubStatus, RosterLoaded


class RosterWork:
    """Part of ``CrowdApp`` (its state is set up in ``CrowdApp.__init__``)."""

    @work(thread=True, exclusive=True, exit_on_error=False, group="roster")
    def load_roster_worker(self) -> None:
        try:
            roster = backend.load_roster(self.workspace, self.roster_obj)
        except Exception as exc:
            self.post_message(RosterLoaded({}, [f"the roster could not be read: {exc}"]))
            return
        self.post_message(RosterLoaded(dict(roster.agents), [str(p) for p in roster.problems],
                                       roster))

    @work(exclusive=True, group="roster-watch", exit_on_error=False)
    async def watch_roster_worker(self) -> None:
        """Roster edits on disk appear live."""
        async for _ in backend.roster_changes(self.workspace):
            self.load_roster_worker()

    @quiet_when_closing
    def on_roster_loaded(self, message: RosterLoaded) -> None:
        first = not self._roster_seen
        self._roster_seen = True
        # the store work runs as a worker: a handler that awaits I/O holds up every
        # message behind it (keys included) for as long as the store takes
        self._sync_roster(message)
        if first and self.watch_roster:
            self.watch_roster_worker()

    @work(exclusive=True, group="roster-sync", exit_on_error=False)
    async def _sync_roster(self, message: RosterLoaded) -> None:
        """Register the roster's agents, then show them: a row in the list is an agent the
        store knows (acting on it works at once)."""
        if message.roster is not None:
            try:
                await backend.sync_registry(self.store, message.roster)
            except Exception as exc:
                self.notify(f"roster: {exc}", severity="warning", markup=False)
        self.roster = message.agents
        self.roster_problems = message.problems
        if message.roster is not None:
            self.roster_obj = message.roster
        await self.refresh_rows()
        self._status()

    @work(exclusive=True, group="hub", exit_on_error=False)
    async def start_hub(self) -> None:
        mode, detail, hub = await backend.start_hub(self.workspace, self.store)
        self.hub = hub
        self.post_message(HubStatus(mode, detail))
        self._start_hub_policies()

    def _start_hub_policies(self) -> None:
        """Our own hub announces new inbox items in agents' terminals (through the app's
        shared sessions) and applies launch/shutdown policies, once it and the runtime are up."""
        if self.hub is None or self.runtime is None or self._policies_started:
            return
        if self.session_pool is None:
            self.session_pool = backend.session_pool(self.docker_client, self.runtime)
        try:
            self.hub.run_policies(self.runtime, self.session_pool)
            self._policies_started = True
        except Exception as exc:  # the console still works without them; say so
            self.notify(f"hub policies not running: {exc}", severity="warning", markup=False)

    @quiet_when_closing
    def on_hub_status(self, message: HubStatus) -> None:
        self.hub_mode = message.mode
        self.hub_detail = message.detail
        if message.detail and message.mode == "none":
            self.notify(f"hub: {message.detail}", severity="warning", markup=False)
        self._status()
