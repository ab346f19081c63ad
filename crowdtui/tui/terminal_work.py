"""The console's terminals: the selected agent's terminal in view 1, and a watch on every
running agent's terminal for a bell or an idle prompt (attention)."""

from __future__ import annotations

import time
from typing import Any

from textual import work

from crowdtui.tui import backend
from crowdtui.tui.attention import AttentionWatch
from crowdtui.tui.closing import quiet_when_closing
from crowdtui.tui.crew import AgentRow
from crowdtui.tui.widgets.terminal_pane import TerminalPane


class TerminalWork:
    """Part of ``CrowdApp`` (its state is set up in ``CrowdApp.__init__``)."""

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
        else:
            acp = self._acp_wanted(name)  # mode: acp shows the conversation (T: the raw terminal)
            shown = pane.conversation if acp else pane.terminal
            if pane.agent != name or pane.container_id != row.container_id or pane.stale or shown is None:
                # a new container, or the same one restarted, or the other of conversation/terminal
                (self._attach_conversation if acp else self._attach_terminal)(name, row.container_id)

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

        self.run_worker(attach, group=f"watch-{name}", exclusive=True, exit_on_error=False)

    def _unwatch(self, name: str) -> None:
        entry = self._watches.pop(name, None)
        if entry is not None and entry[1] is not None:
            try:
                entry[1].close()
            except Exception as exc:  # the session is gone already: nothing left to close
                self.log.warning(f"closing the watch on {name}: {exc}")
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
            self.refresh_rows_soon()

    @work(group="attach", exit_on_error=False)  # not exclusive: the pane runs attaches in turn
    async def _attach_terminal(self, name: str, container_id: str) -> None:
        await self._main.query_one(TerminalPane).attach(name, container_id, self._session)

    async def _session(self, container_id: str) -> Any:
        if self.session_pool is None:
            self.session_pool = backend.session_pool(self.docker_client, self.runtime)
        return await backend.shared_session(self.session_pool, container_id)

    def _row(self, name: str | None) -> AgentRow | None:
        for r in self.rows:
            if r.name == name:
                return r
        return None
