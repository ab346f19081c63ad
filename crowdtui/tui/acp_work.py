"""The console's side of ``mode: acp``: an agent whose definition says ``mode: acp`` shows its
structured conversation in view 1 (messages, plan, tool calls, a prompt line) instead of its
raw terminal; ``T`` switches that agent between the two (the terminal is always there).

The app keeps one :class:`crowdtui.hub.acp.session.AcpAgent` per such agent and container,
started the first time the agent is shown (after a container restart a new one loads the
stored session, or says in the status line why it could not) and closed when the app quits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from textual import work

from crowdtui.tui.widgets.terminal_pane import TerminalPane


class AcpWork:
    """Part of ``CrowdApp`` (its state, ``_acp_agents`` and ``_acp_raw``, is set up in ``__init__``)."""

    def _acp_wanted(self, name: str) -> bool:
        definition = self.roster.get(name)
        return getattr(definition, "mode", "terminal") == "acp" and name not in self._acp_raw

    @work(group="attach", exit_on_error=False)
    async def _attach_conversation(self, name: str, container_id: str) -> None:
        pane = self._main.query_one(TerminalPane)
        try:
            agent = await self._acp_agent(name, container_id)
        except Exception as exc:
            if self.selected == name:
                pane.explain(name, f"No structured turns: {exc}\nPress T for the raw terminal.")
            return
        if self.selected == name:
            await pane.show_conversation(name, container_id, agent)

    async def _acp_agent(self, name: str, container_id: str) -> Any:
        from crowdtui.hub.acp.session import AcpAgent

        lock = self._acp_locks.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._acp_agents.get(name)
            if current is not None and current[0] == container_id and current[1].alive:
                return current[1]
            if current is not None:
                self._acp_agents.pop(name, None)
                await current[1].close()
            if self.runtime is None:
                raise RuntimeError(f"containers are unavailable ({self.docker_error or 'connecting…'})")
            agent = AcpAgent(self.store, self.runtime, self.roster[name], config=self.workspace.config)
            await agent.start()
            self._acp_agents[name] = (container_id, agent)
            return agent

    def action_toggle_conversation(self) -> None:
        """T: the selected agent's conversation <-> its raw terminal (mode: acp agents)."""
        name = self.selected
        if name is None or getattr(self.roster.get(name), "mode", "terminal") != "acp":
            self.notify("T switches between conversation and terminal for agents in mode: acp", timeout=4)
            return
        if name in self._acp_raw:
            self._acp_raw.discard(name)
        else:
            self._acp_raw.add(name)
        self._sync_terminal()

    async def close_acp_agents(self) -> None:
        agents, self._acp_agents = list(self._acp_agents.values()), {}
        for _cid, agent in agents:
            await agent.close()
