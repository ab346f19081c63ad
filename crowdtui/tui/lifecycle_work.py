"""The console's operator actions on agents' containers: start, stop, restart, the
terminal full screen, and exec shells as terminal tabs."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.widgets import TabbedContent, TabPane

from crowdtui.tui import backend
from crowdtui.tui.closing import quiet_when_closing
from crowdtui.tui.crew import AgentRow
from crowdtui.tui.messages import OperationDone
from crowdtui.tui.screens.terminal import TerminalScreen
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.terminal_pane import make_terminal


class LifecycleWork:
    """Part of ``CrowdApp`` (its state is set up in ``CrowdApp.__init__``)."""

    def _running_selected(self, what: str) -> AgentRow | None:
        row = self._row(self.selected)
        if row is None or row.is_operator:
            self.notify(f"select an agent to {what}", severity="warning", markup=False)
            return None
        if self.runtime is None:
            self.notify(f"cannot {what}: containers are unavailable "
                        f"({self.docker_error or 'still connecting'})", severity="warning",
                        markup=False)
            return None
        return row

    def action_start(self, name: str | None = None) -> None:
        name = name or self.selected
        if name and name != self.selected:
            self._main.query_one(AgentList).select(name)
            self.selected = name
        row = self._running_selected("start")
        if row is None:
            return
        agent_def = self.roster.get(row.name)
        if agent_def is None:
            self.notify(inert(f"{row.name} is not in the roster (agents/); add its AGENT.md "
                              "or fix the roster problems first"), severity="error",
                        markup=False)
            return
        if row.running:
            self.notify(inert(f"{row.name} is already running"), markup=False)
            return
        self._lifecycle("start", row.name, agent_def)

    def action_stop(self, name: str | None = None) -> None:
        if name and name != self.selected:
            self._main.query_one(AgentList).select(name)
            self.selected = name
        row = self._running_selected("stop")
        if row is None:
            return
        self._lifecycle("stop", row.name, None)

    def action_restart(self, name: str | None = None) -> None:
        if name and name != self.selected:
            self._main.query_one(AgentList).select(name)
            self.selected = name
        row = self._running_selected("restart")
        if row is None:
            return
        agent_def = self.roster.get(row.name)
        if agent_def is None:
            self.notify(inert(f"{row.name} is not in the roster; cannot restart it"),
                        severity="error", markup=False)
            return
        self._lifecycle("restart", row.name, agent_def)

    @work(group="lifecycle", exit_on_error=False)
    async def _lifecycle(self, op: str, name: str, agent_def: Any) -> None:
        self.notify(inert(f"{op} {name}…"), markup=False, timeout=2)
        try:
            if op in ("start", "restart") and self.hub is not None:
                await backend.open_door(self.hub, name)
            result = await backend.lifecycle(self.runtime, op, name, agent_def, self.store)
        except Exception as exc:
            self.post_message(OperationDone(f"{op} {name}", False, str(exc).splitlines()[0]
                                            if str(exc) else type(exc).__name__))
            return
        try:  # the rows show the new container before the operator hears it is done
            self.containers = await backend.list_containers(self.runtime)
        finally:  # a failing list fails the worker: the app's worker handler says so
            self.post_message(OperationDone(f"{op} {name}", True, "", result))
        await self.refresh_rows()

    @quiet_when_closing
    def on_operation_done(self, message: OperationDone) -> None:
        if message.ok:
            self.notify(inert(message.what + (f": {message.detail}" if message.detail else "")),
                        markup=False)
        else:
            self.notify(inert(f"{message.what} failed: {message.detail}"), severity="error",
                        markup=False, timeout=8)
        self.refresh_rows_soon()

    def action_fullscreen(self) -> None:
        row = self._row(self.selected)
        if row is None or row.is_operator or not row.running or not row.container_id:
            self.notify("the selected agent has no running terminal", severity="warning",
                        markup=False)
            return
        async def open_terminal(container_id: str) -> Any:
            return make_terminal(await self._session(container_id), id="fullscreen-terminal")

        self.push_screen(TerminalScreen(row.name, row.container_id, open_terminal))

    def action_exec_shell(self) -> None:
        row = self._running_selected("open a shell")
        if row is None:
            return
        if not row.running or not row.container_id:
            self.notify(inert(f"{row.name} is not running; start it first (s)"),
                        severity="warning", markup=False)
            return
        self._open_exec(row.name, row.container_id)

    @work(group="exec", exit_on_error=False)
    async def _open_exec(self, name: str, container_id: str) -> None:
        try:
            session = await backend.exec_session(self.docker_client, container_id, self.runtime)
        except Exception as exc:
            self.post_message(OperationDone(f"shell in {name}", False, str(exc)))
            return
        self._exec_count += 1
        pane_id = f"view-exec-{self._exec_count}"
        self._exec_sessions[pane_id] = session
        tabs = self._main.query_one(TabbedContent)
        term = make_terminal(session)
        await tabs.add_pane(TabPane(f"sh {inert(name)}", term, id=pane_id))
        tabs.active = pane_id
        term.focus()

    @quiet_when_closing
    async def on_terminal_closed(self, message) -> None:
        """An exec shell ended (exit): its tab goes away; an agent's own terminal stays."""
        pane = next((a for a in message.control.ancestors if isinstance(a, TabPane)), None)
        if pane is not None and (pane.id or "").startswith("view-exec-"):
            tabs = self._main.query_one(TabbedContent)
            self._exec_sessions.pop(pane.id, None)
            await tabs.remove_pane(pane.id)
            tabs.active = "view-terminal"
            self._main.query_one(AgentList).focus()

    async def action_close_tab(self) -> None:
        tabs = self._main.query_one(TabbedContent)
        pane = tabs.active or ""
        if not pane.startswith("view-exec-"):
            return
        session = self._exec_sessions.pop(pane, None)
        await tabs.remove_pane(pane)
        tabs.active = "view-terminal"
        if session is not None:
            await backend.close_session(session)
        self._main.query_one(AgentList).focus()
