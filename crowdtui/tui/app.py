"""The operator console: one Textual app over the whole crew.

``crowdtui`` with no command runs :func:`run_app`. The app reads and writes only
through the qms ``Store`` (the contract between processes), drives containers through
``crowdtui.runtime`` and shows each agent's terminal with the terminal widget.

``CrowdApp`` holds the layout, the status bar, navigation and the keys; its workers are
grouped by job in parts it is made of: ``store_work`` (the event follower, rows and the
views that read the store), ``container_work`` (runtime, states, stats, logs),
``lifecycle_work`` (start, stop, restart, exec), ``terminal_work`` (terminals and
attention) and ``roster_work`` (roster and hub). The views own their actions
(documents, held chats). A worker that fails is reported in one place:
``on_worker_state_changed``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from crowdtui.tui import backend
from crowdtui.tui.attention import AttentionWatch
from crowdtui.tui.closing import quiet_when_closing
from crowdtui.tui.commands import CrewCommands
from crowdtui.tui.container_work import ContainerWork
from crowdtui.tui.crew import AgentRow, newly_waiting
from crowdtui.tui.doc_actions import DOC_KEYS
from crowdtui.tui.lifecycle_work import LifecycleWork
from crowdtui.tui.messages import CrewChanged
from crowdtui.tui.operator_actions import OperatorActions
from crowdtui.tui.pacing import Pacer, StoreSignal
from crowdtui.tui.roster_work import RosterWork
from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.screens.help import HelpScreen
from crowdtui.tui.screens.terminal import TerminalScreen
from crowdtui.tui.store_work import StoreWork
from crowdtui.tui.terminal_work import TerminalWork
from crowdtui.tui.acp_work import AcpWork
from crowdtui.tui.text import clock, inert, safe
from crowdtui.tui.views import VIEWS
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.inbox_view import InboxView
from crowdtui.tui.widgets.logs_view import MAX_LINES as MAX_LOG_LINES
from crowdtui.tui.widgets.logs_view import LogsView
from crowdtui.tui.widgets.onboarding_view import OnboardingView
from crowdtui.tui.widgets.terminal_pane import TerminalPane
from crowdtui.workspace import Workspace
from qms.names import OPERATOR

NARROW = 140  # below this many columns the list sits above the view
EVENT_BACKLOG = 300  # events shown in Activity when the app opens


class CrowdApp(StoreWork, ContainerWork, LifecycleWork, TerminalWork, AcpWork, RosterWork, OperatorActions,
               App[int]):
    """The console. ``store``: an open qms Store to share (else the app opens its own).

    ``docker``/``hub``/``watch_roster``: turn the container runtime, the MCP hub and the
    roster watcher on or off (tests and the snapshot views turn them off).
    ``time_format``: how times are shown (snapshots pass a constant).
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "crowdtui"
    COMMANDS = App.COMMANDS | {CrewCommands}
    BINDINGS = [
        Binding("question_mark", "help", "keys"),
        Binding("colon", "command_palette", "commands", key_display=":"),
        Binding("ctrl+p", "command_palette", "commands", show=False),
        Binding("slash", "filter", "filter", key_display="/"),
        *[Binding(key, f"view('{name}')", name, show=False) for key, _, name, _, _ in VIEWS],
        Binding("ctrl+f", "search", "search"),
        Binding("P", "approvals", "approvals", show=False),
        Binding("a", "toggle_scope", "all/one", show=False),
        Binding("s", "start", "start"),
        Binding("x", "stop", "stop"),
        Binding("r", "restart", "restart"),
        Binding("f", "fullscreen", "full"),
        Binding("t", "focus_terminal", "type", show=False),
        Binding("T", "toggle_conversation", "conversation/terminal", show=False),
        Binding("e", "exec_shell", "exec", show=False),
        Binding("c", "compose", "msg"),
        Binding("R", "reply", "reply", show=False),
        Binding("b", "broadcast", "bcast", show=False),
        Binding("m", "mark_read", "read", show=False),
        Binding("A", "approve", "approve", show=False),
        Binding("X", "reject", "reject", show=False),
        *[Binding(key, f"doc('{action}')", action, show=False) for key, action in DOC_KEYS],
        Binding("ctrl+w", "close_tab", "close tab", show=False),
        Binding("ctrl+right_square_bracket", "leave_terminal", "leave terminal", show=False,
                priority=True),
        Binding("q", "quit", "quit"),
        Binding("ctrl+q", "quit", "quit", show=False, priority=True),
    ]

    def __init__(
        self,
        workspace: Workspace,
        *,
        store: Any = None,
        docker: bool = True,
        hub: bool = True,
        watch_roster: bool = True,
        poll_interval: float = 0.4,
        time_format: Callable[[Any], str] | None = None,
        live_stats: bool = True,
        idle_prompt_after: float = 20.0,
        containers_interval: float = 30.0,
        stats_interval: float = 6.0,
        idle_stats_interval: float = 30.0,
        rows_interval: float = 30.0,
    ) -> None:
        super().__init__()
        self.workspace = workspace
        self.store = store
        self._own_store = store is None
        self.use_docker = docker
        self.use_hub = hub
        self.watch_roster = watch_roster
        self.poll_interval = poll_interval
        self.time_format = time_format or clock
        self.live_stats = live_stats
        self.title = f"crowdtui · {workspace.name}"
        # what the app knows, refreshed by workers
        self.rows: list[AgentRow] = []
        self.roster: dict[str, Any] = {}
        self.roster_problems: list[str] = []
        self.roster_obj: Any = None
        self._roster_seen = False  # a roster was loaded once (the watch starts then)
        self.containers: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}
        self.runtime: Any = None
        self.docker_client: Any = None
        self.session_pool: Any = None  # SessionPool: one shared PTY session per container
        self._policies_started = False  # hub announcements and launch policies (own hub only)
        self.docker_error: str | None = None
        self.engine_down: str | None = None  # "since HH:MM:SS" while the state follower says so
        self.store_problem: str | None = None  # the store refused the console's last write
        self.hub_mode = "none"  # own (in this app) | other (another process) | none
        self.hub_detail = ""
        self.hub: Any = None
        self.scope_all = False
        self.selected: str | None = None
        self._first_rows = True
        self._exec_count = 0
        self._exec_sessions: dict[str, Any] = {}
        self._acp_agents: dict[str, Any] = {}  # mode: acp — name -> (container id, AcpAgent)
        self._acp_locks: dict[str, Any] = {}
        self._acp_raw: set[str] = set()  # acp agents the operator switched to their raw terminal
        self._events = None  # the console's EventFollower (store_work), once mounted
        self._worker_errors: dict[str, str] = {}  # worker -> the failure last told
        self._logged: set[str] = set()  # agents whose logs are followed now
        self._logs_seen: set[str] = set()  # agents whose logs were followed before
        self.idle_prompt_after = idle_prompt_after
        # Engine states arrive as agent.state events (the state follower writes them), which
        # make the app list the containers at once; the interval is only a safety net.
        self.containers_interval = containers_interval
        # A stats sample costs the engine ~1 s per agent: every stats_interval while some
        # agent prints, every idle_stats_interval when all are quiet.
        self.stats_interval = stats_interval
        self.idle_stats_interval = idle_stats_interval
        self.rows_interval = rows_interval  # rows follow events; a re-read now and then
        self._last_output = float("-inf")  # when some watched terminal last printed
        self._store_signal: StoreSignal | None = None
        self._attention_pacer: Pacer | None = None
        self._status_text: Text | None = None
        self._log_buffer: deque[tuple[str, str]] = deque(maxlen=MAX_LOG_LINES)
        self._log_flush: asyncio.Handle | None = None
        #: name -> (container id, viewer, AttentionWatch) on each running agent's terminal
        self._watches: dict[str, tuple[str, Any, AttentionWatch]] = {}
        self._watched_since: dict[str, str | None] = {}  # the container start each watch follows
        #: name -> why its terminal looks like it waits for the operator
        self.attention: dict[str, str] = {}
        #: chats held by onboarding (no route accepts them), as last read from the store
        self.holds: list[Any] = []
        #: the approval queue (qms.permissions requests pending), as last read, and per agent
        self.permission_requests: list[Any] = []
        self.permission_counts: dict[str, int] = {}
        self._permissions_read = False  # the first read rings no bell

    @property
    def _main(self):
        """The main screen (queries must not look at a dialog pushed on top of it)."""
        stack = self.screen_stack
        if not stack:
            raise NoMatches("the app is closing")
        return stack[0]

    def compose(self) -> ComposeResult:
        yield Static(id="status-bar")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Input(placeholder="filter agents", id="agent-filter")
                yield AgentList(id="agents")
            with TabbedContent(id="views", initial="view-terminal"):
                for key, label, name, widget, wid in VIEWS:
                    with TabPane(f"{key} {label}", id=f"view-{name}"):
                        yield widget(id=wid)
        yield Footer(show_command_palette=False)

    async def on_mount(self) -> None:
        self._main.query_one("#agent-filter", Input).display = False
        for view in (InboxView, ActivityView, OnboardingView):
            self._main.query_one(view).time_format = self.time_format
        self._set_narrow(self.size.width)
        self._main.query_one(AgentList).focus()
        self._status()
        if self.store is None:
            self.store = await self.workspace.open_store()
        last = await self.store.last_event_id()
        self._store_signal = StoreSignal(getattr(self.store, "path", self.workspace.db_path))
        self.follow_events(max(0, last - EVENT_BACKLOG))
        self._attention_pacer = Pacer(self.set_timer, self._check_attention, time.monotonic)
        self.poll_store()
        self.refresh_held()
        self.refresh_permissions()
        self.load_roster_worker()
        if self.use_docker:
            self.connect_runtime()
        if self.use_hub:
            self.start_hub()

    def on_resize(self, event) -> None:
        self._set_narrow(event.size.width)

    def _set_narrow(self, width: int) -> None:
        self.set_class(width < NARROW, "-narrow")
        # side by side, the list takes the width its rows need, leaving the view 84 at least
        self._main.query_one("#left").styles.max_width = None if width < NARROW else max(30, width - 84)

    def _status(self) -> None:
        n = sum(1 for r in self.rows if not r.is_operator)
        running = sum(1 for r in self.rows if r.running and not r.is_operator)
        waiting = sum(1 for r in self.rows if r.needs_operator)
        docker = (f"docker ✗ engine unreachable {self.engine_down}" if self.engine_down else
                  "docker ✓" if self.runtime is not None else
                  "docker: off" if not self.use_docker else
                  f"docker ✗ {self.docker_error}" if self.docker_error else "docker …")
        text = Text.assemble(
            (" crowdtui ", "bold reverse"), " ", safe(self.workspace.name, "bold"),
            f" · {running}/{n} running",
            (f" · {waiting} need you", "bold black on yellow") if waiting else "",
            (f" · {len(self.holds)} chat(s) held (6)", "bold black on yellow") if self.holds else "",
            (f" · {len(self.permission_requests)} ask permission (P)", "bold black on yellow")
            if self.permission_requests else "",
            f" · hub: {self.hub_mode}",
            safe(f" ({self.hub_detail})") if self.hub_mode == "other" and self.hub_detail else "",
            " · ", safe(docker, "bold white on red" if self.engine_down else ""),
            (" · " if self.store_problem else ""),
            safe(f"store ✗ {self.store_problem}", "bold white on red") if self.store_problem else "",
            (f" · roster: {len(self.roster_problems)} problem(s)", "yellow")
            if self.roster_problems else "",
            (" · all agents" if self.scope_all else ""),
            "  ? keys",
        )
        if text == self._status_text:
            return  # unchanged: no repaint
        self._status_text = text
        self._main.query_one("#status-bar", Static).update(text)

    # ------------------------------------------------------------------ navigation
    @quiet_when_closing
    def on_crew_changed(self, message: CrewChanged) -> None:
        before = self.rows
        self.rows = message.rows
        try:
            agent_list = self._main.query_one(AgentList)
        except NoMatches:  # closing down
            return
        agent_list.set_rows(self.rows)
        if not self._first_rows:
            for row in newly_waiting(before, self.rows):
                if row.state == "asks permission":
                    continue  # show_permissions rang and said it
                why = "crashed" if row.state == "crashed" else "is waiting for you"
                note = f": {row.note}" if row.note else ""
                self.notify(inert(f"{row.name} {why}{note}"), title="needs you",
                            severity="warning", markup=False)
                self.bell()
        self._first_rows = False
        self._status()
        if self.selected:
            self._sync_terminal()

    @quiet_when_closing
    def on_agent_list_selected(self, message: AgentList.Selected) -> None:
        self.selected = message.name
        self._sync_terminal()
        self._check_attention()  # looking at a terminal answers it
        self.refresh_inbox()
        self.refresh_documents()
        self._main.query_one(LogsView).set_agent(self._logs_scope())

    @on(TabbedContent.TabActivated)
    @quiet_when_closing
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._sync_terminal()
        self._check_attention()
        pane = event.pane.id or ""
        if pane == "view-inbox":
            self.refresh_inbox()
        elif pane == "view-documents":
            self.refresh_documents()
        elif pane == "view-held":
            self.refresh_held()

    @on(Input.Changed, "#agent-filter")
    @quiet_when_closing
    def _filter_changed(self, event: Input.Changed) -> None:
        self._main.query_one(AgentList).set_filter(event.value)

    @on(Input.Submitted, "#agent-filter")
    @quiet_when_closing
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.display = False
        self._main.query_one(AgentList).focus()

    def _agent_scope(self) -> str | None:
        if self.scope_all:
            return None
        return self.selected

    def _logs_scope(self) -> str | None:
        """The operator has no logs: with the operator selected, Logs shows every agent."""
        scope = self._agent_scope()
        return None if scope == OPERATOR else scope

    @property
    def active_view(self) -> str:
        return (self._main.query_one(TabbedContent).active or "view-terminal").removeprefix("view-")

    # ------------------------------------------------------------------ actions
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_view(self, view: str) -> None:
        self._main.query_one(TabbedContent).active = f"view-{view}"

    def action_toggle_scope(self) -> None:
        self.scope_all = not self.scope_all
        self.notify("views show every agent" if self.scope_all else
                    "views show the selected agent", markup=False, timeout=2)
        self.refresh_inbox()
        self.refresh_documents()
        self._main.query_one(LogsView).set_agent(self._logs_scope())
        self._status()

    def action_filter(self) -> None:
        if self.active_view == "logs":
            self._main.set_focus(self._main.query_one("#logs-search", Input))
            return
        if self.active_view == "activity":
            self._main.set_focus(self._main.query_one("#activity-agent", Input))
            return
        f = self._main.query_one("#agent-filter", Input)
        f.display = True
        self._main.set_focus(f)  # now, so keys typed right after / land in the filter

    def action_leave_terminal(self) -> None:
        if isinstance(self.screen, TerminalScreen):
            self.screen.dismiss(None)
            return
        self._main.query_one(AgentList).focus()

    def action_focus_terminal(self) -> None:
        self.action_view("terminal")
        pane = self._main.query_one(TerminalPane)
        if pane.terminal is not None:
            pane.terminal.focus()
        elif pane.conversation is not None:
            pane.conversation.query_one("#acp-prompt").focus()
        else:
            self._sync_terminal()

    @quiet_when_closing
    def on_data_table_row_selected(self, event) -> None:
        table = event.data_table
        if table.id == "docs-table" and event.row_key is not None:
            self.push_screen(DocumentScreen(str(event.row_key.value)))
        elif table.id == "agents":
            self.action_focus_terminal()

    # ------------------------------------------------------------------ worker errors
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker is reported: logged, and told to the operator
        (workers run with ``exit_on_error=False``: one job failing never ends the console).
        A job that fails the same way again is logged, not told again, until it succeeds."""
        worker = event.worker
        what = worker.name or worker.group or "a background job"
        if event.state == WorkerState.SUCCESS:
            self._worker_errors.pop(what, None)
        if event.state != WorkerState.ERROR:
            return
        error = worker.error
        self.log.error(f"worker {what} failed: {error!r}")
        if isinstance(error, (NoMatches, ScreenStackError)) or not self.is_running or not self.screen_stack:
            return  # the app is closing: its screens are going away
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if self._worker_errors.get(what) == text:
            return
        self._worker_errors[what] = text
        self.notify(inert(f"{what.strip('_').replace('_', ' ')} failed: {text}"), severity="error",
                    markup=False, timeout=8)

    async def action_quit(self) -> None:
        self.exit(0)

    async def on_unmount(self) -> None:
        if self._log_flush is not None:
            self._log_flush.cancel()
        await backend.shutdown(self)


def run_app(workspace: Workspace) -> int:
    """``crowdtui`` with no command: open the console on the workspace."""
    app = CrowdApp(workspace)
    result = app.run()
    return int(result or 0)
