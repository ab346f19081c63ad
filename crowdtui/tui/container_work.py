"""The console's container work: the Docker runtime, container states and stats, and
each running agent's log lines."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from textual import work

from crowdtui.tui import backend
from crowdtui.tui.closing import quiet_when_closing
from crowdtui.tui.messages import ContainersChanged, LogLines, RuntimeReady, StatsUpdated
from crowdtui.tui.pacing import stats_due
from crowdtui.tui.widgets.logs_view import MAX_LINES as MAX_LOG_LINES
from crowdtui.tui.widgets.logs_view import LogsView
from crowdtui.tui.widgets.terminal_pane import typed_at

LOG_BATCH_SECONDS = 0.1  # log lines are handed to Logs in batches at most this often
TYPING_GRACE = 2.0  # seconds after a keystroke in a terminal during which stats wait


class ContainerWork:
    """Part of ``CrowdApp`` (its state is set up in ``CrowdApp.__init__``)."""

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
        self.run_worker(follow, group=f"logs-{name}", exclusive=True, exit_on_error=False)

    def _flush_logs(self) -> None:
        self._log_flush = None
        if self._log_buffer:
            lines, self._log_buffer = list(self._log_buffer), deque(maxlen=MAX_LOG_LINES)
            self.post_message(LogLines(lines))

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
            self.refresh_rows_soon()

    @quiet_when_closing
    def on_stats_updated(self, message: StatsUpdated) -> None:
        self.stats = message.stats
        self.refresh_rows_soon()

    @quiet_when_closing
    def on_log_lines(self, message: LogLines) -> None:
        self._main.query_one(LogsView).add_lines(message.lines)
