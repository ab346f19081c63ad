"""The operator console: one Textual app over the whole crew.

``crowdtui`` with no command runs :func:`run_app`. The app reads and writes only
through the qms ``Store`` (the contract between processes), drives containers through
``crowdtui.runtime`` and shows each agent's terminal with the terminal widget.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from crowdtui.tui import backend
from crowdtui.tui.attention import AttentionWatch
from crowdtui.tui.commands import CrewCommands
from crowdtui.tui.crew import OPERATOR, AgentRow, merge_rows, newly_waiting
from crowdtui.tui.pacing import Pacer, StoreSignal, stats_due
from crowdtui.tui.messages import (
    ContainersChanged,
    CrewChanged,
    EventsArrived,
    HubStatus,
    LogLines,
    OperationDone,
    RosterLoaded,
    RuntimeReady,
    StatsUpdated,
)
from crowdtui.tui.screens.compose import ComposeScreen, Draft
from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.screens.form import Field, FormScreen
from crowdtui.tui.screens.help import HelpScreen
from crowdtui.tui.screens.terminal import TerminalScreen
from crowdtui.tui.text import clock, inert, safe
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.documents_view import DocumentsView
from crowdtui.tui.widgets.inbox_view import InboxView
from crowdtui.tui.widgets.logs_view import MAX_LINES as MAX_LOG_LINES
from crowdtui.tui.widgets.logs_view import LogsView
from crowdtui.tui.widgets.onboarding_view import OnboardingView
from crowdtui.tui.widgets.terminal_pane import TerminalPane, make_terminal, typed_at
from crowdtui.workspace import Workspace

def quiet_when_closing(handler):
    """Messages that arrive while the app tears its screens down are dropped, not fatal."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def async_wrapper(self, *args, **kwargs):
            try:
                return await handler(self, *args, **kwargs)
            except (NoMatches, ScreenStackError):
                if self.is_running and self.screen_stack:
                    raise
        return async_wrapper

    @functools.wraps(handler)
    def wrapper(self, *args, **kwargs):
        try:
            return handler(self, *args, **kwargs)
        except (NoMatches, ScreenStackError):
            if self.is_running and self.screen_stack:
                raise
    return wrapper


VIEWS = ("terminal", "inbox", "documents", "activity", "logs", "held")
#: event kinds (before the dot) after which the held chats are read again
HELD_KINDS = {"onboard", "chat", "route", "inbound"}
NARROW = 140  # below this many columns the list sits above the view
EVENT_BACKLOG = 300  # events shown in Activity when the app opens
LOG_BATCH_SECONDS = 0.1  # log lines are handed to Logs in batches at most this often
TYPING_GRACE = 2.0  # seconds after a keystroke in a terminal during which stats wait


class CrowdApp(App[int]):
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
        Binding("1", "view('terminal')", "term", show=False),
        Binding("2", "view('inbox')", "inbox", show=False),
        Binding("3", "view('documents')", "docs", show=False),
        Binding("4", "view('activity')", "activity", show=False),
        Binding("5", "view('logs')", "logs", show=False),
        Binding("6", "view('held')", "held", show=False),
        Binding("a", "toggle_scope", "all/one", show=False),
        Binding("s", "start", "start"),
        Binding("x", "stop", "stop"),
        Binding("r", "restart", "restart"),
        Binding("f", "fullscreen", "full"),
        Binding("t", "focus_terminal", "type", show=False),
        Binding("e", "exec_shell", "exec", show=False),
        Binding("c", "compose", "msg"),
        Binding("R", "reply", "reply", show=False),
        Binding("b", "broadcast", "bcast", show=False),
        Binding("m", "mark_read", "read", show=False),
        Binding("A", "doc('approve')", "approve", show=False),
        Binding("X", "doc('reject')", "reject", show=False),
        Binding("V", "doc('review')", "review", show=False),
        Binding("O", "doc('route')", "route", show=False),
        Binding("L", "doc('break_lock')", "unlock", show=False),
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
        self._last_event_id = 0
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

    @property
    def _main(self):
        """The main screen (queries must not look at a dialog pushed on top of it)."""
        stack = self.screen_stack
        if not stack:
            raise NoMatches("the app is closing")
        return stack[0]

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="status-bar")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Input(placeholder="filter agents", id="agent-filter")
                yield AgentList(id="agents")
            with TabbedContent(id="views", initial="view-terminal"):
                with TabPane("1 Terminal", id="view-terminal"):
                    yield TerminalPane(id="terminal-pane")
                with TabPane("2 Inbox", id="view-inbox"):
                    yield InboxView(id="inbox")
                with TabPane("3 Docs", id="view-documents"):
                    yield DocumentsView(id="documents")
                with TabPane("4 Activity", id="view-activity"):
                    yield ActivityView(id="activity")
                with TabPane("5 Logs", id="view-logs"):
                    yield LogsView(id="logs")
                with TabPane("6 Held", id="view-held"):
                    yield OnboardingView(id="held")
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
        self._last_event_id = max(0, last - EVENT_BACKLOG)
        self._store_signal = StoreSignal(getattr(self.store, "path", self.workspace.db_path))
        self._attention_pacer = Pacer(self.set_timer, self._check_attention, time.monotonic)
        self.poll_store()
        self.refresh_held()
        self.load_roster_worker()
        if self.use_docker:
            self.connect_runtime()
        if self.use_hub:
            self.start_hub()

    def on_resize(self, event) -> None:
        self._set_narrow(event.size.width)

    def _set_narrow(self, width: int) -> None:
        self.set_class(width < NARROW, "-narrow")

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

    # ------------------------------------------------------------------ workers
    @work(exclusive=True, group="poll", exit_on_error=False)
    async def poll_store(self) -> None:
        """Follow the store: new events feed Activity and trigger a refresh of what changed.

        The store is read only after its files changed (a stat per tick, see StoreSignal)."""
        last_rows = float("-inf")
        more = False
        while True:
            events = []
            now = time.monotonic()
            retry = False
            if more or self._store_signal is None or self._store_signal.changed(now):
                try:
                    events = await self.store.events_after(self._last_event_id, limit=500)
                except Exception as exc:  # a busy store is retried on the next tick
                    self.log.warning(f"poll: {exc}")
                    retry = True
            if events:
                self._last_event_id = events[-1].id
                self.post_message(EventsArrived(events))
            if events or now - last_rows >= self.rows_interval:
                last_rows = now
                await self.refresh_rows()
            more = len(events) >= 500
            await asyncio.sleep(0 if more else self.poll_interval)
            more = more or retry

    async def refresh_rows(self) -> None:
        try:
            agents = await self.store.list_agents()
            unread = await self.store.unread_counts()
        except Exception as exc:
            self.log.warning(f"refresh: {exc}")
            return
        rows = merge_rows(agents, roster=self.roster, containers=self.containers,
                          unread=unread, stats=self.stats if self.live_stats else {},
                          attention=self.attention)
        self.post_message(CrewChanged(rows))

    @work(thread=True, exclusive=True, exit_on_error=False, group="docker")
    def connect_runtime(self) -> None:
        try:
            runtime, client = backend.connect_runtime(self.workspace)
        except Exception as exc:
            self.post_message(RuntimeReady(error=str(exc).splitlines()[0] if str(exc) else
                                           type(exc).__name__))
            return
        self.post_message(RuntimeReady(runtime=runtime, client=client))

    @work(exclusive=True, group="containers", exit_on_error=False)
    async def follow_containers(self) -> None:
        """Adopt running agent containers, then keep their states (and stats) current."""
        try:
            adopted = await backend.adopt(self.runtime)
            if adopted:
                self.notify(f"re-adopted {len(adopted)} running agent(s)", markup=False)
        except Exception as exc:
            self.notify(f"could not adopt running agents: {exc}", severity="warning",
                        markup=False)
        last_list = last_stats = float("-inf")
        while True:
            now = time.monotonic()
            if now - last_list >= self.containers_interval:
                last_list = now
                try:
                    containers = await backend.list_containers(self.runtime)
                    self.post_message(ContainersChanged(containers))
                except Exception as exc:
                    self.log.warning(f"containers: {exc}")
            wake = last_list + self.containers_interval
            if self.live_stats:
                due = stats_due(now, last_stats, self._last_output, self.stats_interval,
                                self.idle_stats_interval, typed_at(), TYPING_GRACE)
                if now >= due:
                    last_stats = now
                    self.collect_stats()
                    due = now + self.stats_interval
                # wake often enough to notice that agents began to print
                wake = min(wake, due, now + self.stats_interval)
            await asyncio.sleep(max(0.05, wake - time.monotonic()))

    @work(exclusive=True, group="containers-now", exit_on_error=False)
    async def refresh_containers(self) -> None:
        self.post_message(ContainersChanged(await backend.list_containers(self.runtime)))

    @work(thread=True, exclusive=True, exit_on_error=False, group="stats")
    def collect_stats(self) -> None:
        self.post_message(StatsUpdated(backend.collect_stats(self.runtime)))

    @work(exclusive=True, group="states", exit_on_error=False)
    async def follow_states(self) -> None:
        """Crashes, stops and OOM kills become registry states (and agent.state events)."""
        await backend.follow_states(self.runtime, self.store)

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
            self.session_pool = backend.session_pool(self.docker_client)
        try:
            self.hub.run_policies(self.runtime, self.session_pool)
            self._policies_started = True
        except Exception as exc:  # the console still works without them; say so
            self.notify(f"hub policies not running: {exc}", severity="warning", markup=False)

    def follow_logs(self, name: str, tail: int) -> None:
        """One running agent's log lines into Logs, until its container stops."""

        async def follow() -> None:
            try:
                async for lines in backend.follow_logs(self.runtime, [name], tail=tail):
                    # Lines that come together (a flood) go to Logs as one message per
                    # LOG_BATCH_SECONDS, not one per line; the newest MAX_LINES are kept.
                    self._log_buffer.extend(lines)
                    if self._log_flush is None:
                        self._log_flush = asyncio.get_running_loop().call_later(
                            LOG_BATCH_SECONDS, self._flush_logs)
            finally:
                self._logged.discard(name)

        self._logged.add(name)
        self._logs_seen.add(name)
        self.run_worker(follow(), group=f"logs-{name}", exclusive=True, exit_on_error=False)

    def _flush_logs(self) -> None:
        self._log_flush = None
        if self._log_buffer:
            lines, self._log_buffer = list(self._log_buffer), deque(maxlen=MAX_LOG_LINES)
            self.post_message(LogLines(lines))

    # ------------------------------------------------------------------ message handlers
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

    @quiet_when_closing
    def on_runtime_ready(self, message: RuntimeReady) -> None:
        if message.error:
            self.docker_error = message.error
            self.notify(f"no containers: {message.error}", severity="warning", markup=False)
        else:
            self.runtime = message.runtime
            self.docker_client = message.client
            self.follow_containers()
            self.follow_states()
            self._start_hub_policies()
        self._status()

    @quiet_when_closing
    def on_containers_changed(self, message: ContainersChanged) -> None:
        for name, info in message.containers.items():
            if info.state == "running" and name not in self._logged:
                self.follow_logs(name, 0 if name in self._logs_seen else 100)
            watched = self._watches.get(name)
            restarted = watched is not None and self._watched_since.get(name) != info.started_at
            if info.state == "running" and (watched is None or watched[0] != info.container_id or restarted):
                self._unwatch(name)  # the same container started again has a new attach stream
                self._watch_terminal(name, info.container_id)
                self._watched_since[name] = info.started_at
            elif info.state != "running" and watched is not None:
                self._unwatch(name)
        if message.containers != self.containers:
            self.containers = message.containers
            self.run_worker(self.refresh_rows(), group="rows", exclusive=True, exit_on_error=False)

    @quiet_when_closing
    def on_stats_updated(self, message: StatsUpdated) -> None:
        self.stats = message.stats
        self.run_worker(self.refresh_rows(), group="rows", exclusive=True, exit_on_error=False)

    @quiet_when_closing
    def on_roster_loaded(self, message: RosterLoaded) -> None:
        first = not self.roster and not self.roster_problems
        self.roster = message.agents
        self.roster_problems = message.problems
        if message.roster is not None:
            self.roster_obj = message.roster
        # the store work runs as a worker: a handler that awaits I/O holds up every
        # message behind it (keys included) for as long as the store takes
        self._sync_roster(message.roster)
        if first and self.watch_roster:
            self.watch_roster_worker()
        self._status()

    @work(exclusive=True, group="roster-sync", exit_on_error=False)
    async def _sync_roster(self, roster: Any) -> None:
        if roster is not None:
            try:
                await backend.sync_registry(self.store, roster)
            except Exception as exc:
                self.notify(f"roster: {exc}", severity="warning", markup=False)
        await self.refresh_rows()

    @quiet_when_closing
    def on_hub_status(self, message: HubStatus) -> None:
        self.hub_mode = message.mode
        self.hub_detail = message.detail
        if message.detail and message.mode == "none":
            self.notify(f"hub: {message.detail}", severity="warning", markup=False)
        self._status()

    @quiet_when_closing
    def on_log_lines(self, message: LogLines) -> None:
        self._main.query_one(LogsView).add_lines(message.lines)

    @quiet_when_closing
    def on_operation_done(self, message: OperationDone) -> None:
        if message.ok:
            self.notify(inert(message.what + (f": {message.detail}" if message.detail else "")),
                        markup=False)
        else:
            self.notify(inert(f"{message.what} failed: {message.detail}"), severity="error",
                        markup=False, timeout=8)
        self.run_worker(self.refresh_rows(), group="rows", exclusive=True, exit_on_error=False)

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

    # ------------------------------------------------------------------ views
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

    def _sync_terminal(self) -> None:
        if self.active_view != "terminal":
            return
        pane = self._main.query_one(TerminalPane)
        name = self.selected
        row = self._row(name)
        if name is None or row is None:
            pane.explain(None, "Select an agent.")
        elif row.is_operator:
            pane.explain(name, "You are the operator: your inbox is in view 2.")
        elif not row.running or not row.container_id:
            why = "crashed" if row.state == "crashed" else "stopped"
            hint = "press s to start it" if self.runtime is not None else (
                f"containers are unavailable ({self.docker_error or 'connecting…'})")
            pane.explain(name, f"{why} — {hint}.")
        elif pane.agent != name or pane.container_id != row.container_id or pane.stale:
            self._attach_terminal(name, row.container_id)  # a new container, or the same one restarted

    def _watch_terminal(self, name: str, container_id: str) -> None:
        """Watch an agent's terminal for a bell or an idle prompt (one more viewer)."""
        watch = AttentionWatch(self.idle_prompt_after, time.monotonic())
        self._watches[name] = (container_id, None, watch)

        async def attach() -> None:
            session = await self._session(container_id)
            if self._watches.get(name, (None,))[0] != container_id:
                return

            def on_output(data: bytes) -> None:
                now = time.monotonic()
                self._last_output = now
                if watch.feed(data, now) or name in self.attention:
                    self.call_later(self._check_attention)
                elif self._attention_pacer is not None:
                    self._attention_pacer.schedule(now + watch.idle_after)

            def on_close() -> None:
                if self._watches.get(name, (None,))[0] == container_id:
                    self._watches.pop(name, None)

            # what it printed since the session opened (output from before that is gone:
            # the engine's log keeps only whole lines, and a prompt has no newline)
            watch.prime(getattr(session, "backlog", b""), time.monotonic())
            viewer = session.add_viewer(on_output, on_close)
            self._watches[name] = (container_id, viewer, watch)

        self.run_worker(attach(), group=f"watch-{name}", exclusive=True, exit_on_error=False)

    def _unwatch(self, name: str) -> None:
        entry = self._watches.pop(name, None)
        if entry is not None and entry[1] is not None:
            try:
                entry[1].close()
            except Exception:
                pass
        self.attention.pop(name, None)

    @quiet_when_closing
    def _check_attention(self) -> None:
        now = time.monotonic()
        looking = self.selected if self.active_view == "terminal" else None
        attention = {}
        for name, (_cid, _viewer, watch) in self._watches.items():
            if name == looking:  # the operator is looking at it: nothing to flag
                watch.seen()
                continue
            why = watch.reason(now)
            if why:
                attention[name] = why
        if self._attention_pacer is not None:  # wake when an idle prompt may be due, not before
            dues = [d for _cid, _v, w in self._watches.values() if (d := w.due()) is not None and d > now]
            self._attention_pacer.schedule(min(dues, default=None))
        if attention != self.attention:
            self.attention = attention
            self.run_worker(self.refresh_rows(), group="rows", exclusive=True,
                            exit_on_error=False)

    @work(exclusive=True, group="attach", exit_on_error=False)
    async def _attach_terminal(self, name: str, container_id: str) -> None:
        await self._main.query_one(TerminalPane).attach(name, container_id, self._session)

    async def _session(self, container_id: str) -> Any:
        if self.session_pool is None:
            self.session_pool = backend.session_pool(self.docker_client)
        return await backend.shared_session(self.session_pool, container_id)

    def _row(self, name: str | None) -> AgentRow | None:
        for r in self.rows:
            if r.name == name:
                return r
        return None

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
        from crowdtui.engine.onboarding import list_holds

        try:
            holds = await list_holds(self.store)
        except Exception as exc:  # a busy store: the next event or tick tries again
            self.log.warning(f"holds: {exc}")
            return
        self.show_holds(holds)

    @quiet_when_closing
    def show_holds(self, holds: list[Any]) -> None:
        self.holds = holds
        self._main.query_one(OnboardingView).show(holds)
        tabs = self._main.query_one(TabbedContent)
        tabs.get_tab("view-held").label = f"6 Held ({len(holds)})" if holds else "6 Held"
        self._status()

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
        else:
            self._sync_terminal()

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
        try:
            self.containers = await backend.list_containers(self.runtime)
        except Exception:
            pass
        self.post_message(OperationDone(f"{op} {name}", True, "", result))
        await self.refresh_rows()

    def action_fullscreen(self) -> None:
        row = self._row(self.selected)
        if row is None or row.is_operator or not row.running or not row.container_id:
            self.notify("the selected agent has no running terminal", severity="warning",
                        markup=False)
            return
        self.push_screen(TerminalScreen(row.name, row.container_id, self._session))

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
            session = await backend.exec_session(self.docker_client, container_id)
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

    # --- inbox
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
        m = self._main.query_one(InboxView).current
        if m is None:
            self.notify("no message to reply to: open the Inbox (2) and pick one",
                        severity="warning", markup=False)
            return
        to = m.sender if m.sender != OPERATOR else m.recipient
        quote = "".join(f"> {line}\n" for line in inert(m.body, multiline=True).splitlines()[:5])
        self.push_screen(ComposeScreen(to=to, thread=m.thread or str(m.id), quote=quote + "\n",
                                       send=self.send_draft, title=f"Reply to {inert(to)}"),
                         self._after_send)

    def action_broadcast(self) -> None:
        names = [r.name for r in self.rows if not r.is_operator]
        if not names:
            self.notify("no agents to broadcast to", severity="warning", markup=False)
            return
        self.push_screen(ComposeScreen(choices=names, selected=names, send=self.send_draft,
                                       title="Broadcast: pick the agents"), self._after_send)

    async def action_mark_read(self) -> None:
        view = self._main.query_one(InboxView)
        m = view.current
        if m is None or m.recipient != OPERATOR:
            self.notify("only your own messages can be marked read", severity="warning",
                        markup=False)
            return
        await self.store.mark_read(OPERATOR, [m.id])
        self.refresh_inbox()

    # --- onboarding (held chats)
    def action_held(self, action: str, chat: str | None = None) -> None:
        """Approve (route to an agent) or deny the highlighted held chat, or ``chat``."""
        if chat is None:
            hold = self._main.query_one(OnboardingView).current
            if hold is None:
                self.notify("no chat is held: open Held (6) when one waits", severity="warning",
                            markup=False)
                return
            chat = hold.chat
        self.run_worker(self.held_action(action, chat), group="held-action", exclusive=True,
                        exit_on_error=False)

    async def held_action(self, action: str, chat: str) -> bool:
        """Ask, then approve or deny ``chat`` as the operator. True when done."""
        from crowdtui.engine.onboarding import approve_chat, deny_chat

        hold = next((h for h in self.holds if h.chat == chat), None)
        count = hold.count if hold is not None else 0
        what = f"{count} held message{'s' if count != 1 else ''}" if count else "its held messages"
        if action == "approve":
            names = sorted(r.name for r in self.rows if not r.is_operator)
            if not names:
                self.notify("no agents to route the chat to", severity="warning", markup=False)
                return False
            default = self.selected if self.selected in names else names[0]
            vals = await self.push_screen_wait(FormScreen(
                f"Approve chat {chat} ({what})",
                [Field("agent", "route it to the agent", names, value=default)]))
            if not vals:
                return False
            try:
                route_id, n = await approve_chat(self.store, chat, vals["agent"], actor=OPERATOR,
                                                 now=time.time())
            except Exception as exc:
                self.notify(inert(f"approve {chat}: {exc}"), severity="error", markup=False,
                            timeout=8)
                return False
            self.notify(inert(f"chat {chat} -> {vals['agent']} (route {route_id}); {n} held "
                              f"message{'s' if n != 1 else ''} released (a running serve "
                              "delivers them)"), markup=False)
        elif action == "deny":
            vals = await self.push_screen_wait(FormScreen(
                f"Deny chat {chat}: drop {what}?", []))
            if vals is None:
                return False
            try:
                n = await deny_chat(self.store, chat, actor=OPERATOR)
            except Exception as exc:
                self.notify(inert(f"deny {chat}: {exc}"), severity="error", markup=False, timeout=8)
                return False
            self.notify(inert(f"dropped {n} held message{'s' if n != 1 else ''} of chat {chat}"),
                        markup=False)
        else:
            raise ValueError(f"unknown action {action}")
        self.refresh_held()
        return True

    # --- documents
    def action_doc(self, action: str) -> None:
        if self.active_view == "held" and action in ("approve", "reject"):
            self.action_held("approve" if action == "approve" else "deny")
            return
        doc = self._main.query_one(DocumentsView).current
        if doc is None:
            self.notify("no document selected: open Documents (3) and pick one",
                        severity="warning", markup=False)
            return
        self.run_worker(self.document_action(action, doc.id), group="doc-action",
                        exclusive=True, exit_on_error=False)

    async def document_action(self, action: str, doc_id: str) -> bool:
        """Ask for what the action needs, then do it as the operator. True when done."""
        store = self.store
        forms = {
            "approve": ("Approve", [Field("comment", "comment (optional)")]),
            "reject": ("Reject", [Field("comment", "why (required)", required=True)]),
            "review": ("Review", [Field("outcome", "outcome", ["recommend", "request-updates"]),
                                  Field("comment", "comment", required=True)]),
            "route": ("Route", [Field("kind", "for", ["review", "approval"]),
                                Field("assignees", "to (names, comma separated)",
                                      required=True)]),
        }
        vals: dict[str, str] = {}
        if action in forms:
            title, fields = forms[action]
            vals = await self.push_screen_wait(FormScreen(f"{title} {doc_id}", fields)) or {}
            if not vals:
                return False
        try:
            if action == "approve":
                await store.approve(doc_id, OPERATOR, vals.get("comment") or None)
            elif action == "reject":
                await store.reject(doc_id, OPERATOR, vals["comment"])
            elif action == "review":
                await store.review(doc_id, OPERATOR, vals["outcome"], vals["comment"])
            elif action == "route":
                names = [n.strip() for n in vals["assignees"].split(",") if n.strip()]
                await store.route(doc_id, OPERATOR, vals["kind"], names)
            elif action == "break_lock":
                await store.break_lock(doc_id, OPERATOR)
            else:
                raise ValueError(f"unknown action {action}")
        except Exception as exc:
            self.store_wrote(exc)
            self.notify(inert(f"{doc_id}: {exc}"), severity="error", markup=False, timeout=8)
            return False
        self.store_wrote(None)
        self.notify(inert(f"{doc_id}: {action.replace('_', ' ')} done"), markup=False)
        self.refresh_documents()
        return True

    @quiet_when_closing
    def on_data_table_row_selected(self, event) -> None:
        table = event.data_table
        if table.id == "docs-table" and event.row_key is not None:
            self.push_screen(DocumentScreen(str(event.row_key.value)))
        elif table.id == "agents":
            self.action_focus_terminal()

    async def action_quit(self) -> None:
        self.exit(0)

    async def on_unmount(self) -> None:
        if self._log_flush is not None:
            self._log_flush.cancel()
        await backend.shutdown(self)


def run_app(args) -> int:
    """``crowdtui`` with no command: open the console on the workspace."""
    from crowdtui.workspace import find_workspace

    ws = find_workspace(getattr(args, "workspace", None))
    app = CrowdApp(ws)
    result = app.run()
    return int(result or 0)
