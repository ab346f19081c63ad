"""Console flows on real containers: start, terminal, type, full screen, stop, re-adopt."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.tui.app import CrowdApp
from crowdtui.tui.screens.terminal import TerminalScreen
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.logs_view import LogsView
from crowdtui.tui.widgets.terminal_pane import TerminalPane
from tests.tui.conftest import add_agent, wait_for

pytestmark = pytest.mark.docker


def screen_text(terminal) -> str:
    return "\n".join(terminal.emulator.text())


def container_status(docker_client, container_id: str) -> str:
    return docker_client.containers.get(container_id).status


def console(ws) -> CrowdApp:
    return CrowdApp(ws, hub=False, watch_roster=False, poll_interval=0.1, live_stats=False)


async def type_line(pilot, text: str) -> None:
    for ch in text:
        await pilot.press({" ": "space", "$": "dollar_sign", "(": "left_parenthesis",
                           ")": "right_parenthesis", "*": "asterisk", "-": "minus"}.get(ch, ch))
    await pilot.press("enter")


async def test_start_type_fullscreen_quit_reopen_stop(workspace, docker_client, agent_image):
    add_agent(workspace, "shell", command="[bash]")
    app = console(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("shell"),
                       what="runtime connected and roster loaded")
        agents.select("shell")
        await pilot.pause()
        assert agents.row("shell").state == "stopped"
        await pilot.press("s")
        row = await wait_for(pilot, lambda: (r := agents.row("shell")) and r.running and r, 60,
                             what="shell running")
        container_id = row.container_id
        assert container_status(docker_client, container_id) == "running"

        pane = app.query_one(TerminalPane)
        await wait_for(pilot, lambda: pane.terminal is not None, what="terminal attached")
        await pilot.press("t")
        assert app.focused is pane.terminal
        await type_line(pilot, "echo hello-$((6*7))")
        await wait_for(pilot, lambda: "hello-42" in screen_text(pane.terminal), 30,
                       what="command output in the terminal")

        await pilot.press("ctrl+right_square_bracket")  # leave the terminal
        assert app.focused is agents
        await pilot.press("f")
        full = await wait_for(pilot, lambda: isinstance(app.screen, TerminalScreen) and app.screen)
        await wait_for(pilot, lambda: full.terminal is not None and
                       "hello-42" in screen_text(full.terminal), what="full screen shows it")
        assert app.focused is full.terminal
        await type_line(pilot, "echo again-$((2*3))")
        await wait_for(pilot, lambda: "again-6" in screen_text(full.terminal))
        await pilot.press("ctrl+right_square_bracket")
        await wait_for(pilot, lambda: not isinstance(app.screen, TerminalScreen))
        # the embedded terminal saw the same session all along
        await wait_for(pilot, lambda: "again-6" in screen_text(pane.terminal))
        assert container_status(docker_client, container_id) == "running"
    # quitting leaves the agent running
    assert container_status(docker_client, container_id) == "running"

    app = console(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        row = await wait_for(pilot, lambda: (r := agents.row("shell")) and r.container_id and r, 30,
                             what="re-adopted")
        assert row.container_id == container_id
        agents.select("shell")
        pane = app.query_one(TerminalPane)
        await wait_for(pilot, lambda: pane.terminal is not None, what="terminal re-attached")
        await pilot.press("t")
        await type_line(pilot, "echo back-$((1+1))")
        await wait_for(pilot, lambda: "back-2" in screen_text(pane.terminal), 30)
        await pilot.press("ctrl+right_square_bracket")
        await pilot.press("x")
        await wait_for(pilot, lambda: agents.row("shell").state == "stopped", 60,
                       what="stopped")
        assert container_status(docker_client, container_id) == "exited"
        assert "stopped" in str(app.query_one("#terminal-placeholder").render())


async def test_logs_of_running_agents_are_merged_and_searchable(workspace, docker_client,
                                                                 agent_image):
    add_agent(workspace, "ticker", command="[sh, -c, 'for i in 1 2 3; do echo tick-$i; done; "
                                            "sleep 600']")
    add_agent(workspace, "tocker", command="[sh, -c, 'echo tock-1; sleep 600']")
    app = console(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("tocker"))
        for name in ("ticker", "tocker"):
            agents.select(name)
            await pilot.pause()
            await pilot.press("s")
            await wait_for(pilot, lambda: agents.row(name).running, 60, what=f"{name} running")
        agents.select("operator")  # the operator has no logs of its own: every agent's show
        await pilot.pause()
        await pilot.press("5")
        logs = app.query_one(LogsView)
        await wait_for(pilot, lambda: {("ticker", "tick-3"), ("tocker", "tock-1")} <= set(logs.lines),
                       30, what="both agents' lines")
        logs.set_search("tick-2")
        assert logs.shown == [("ticker", "tick-2")]
        logs.set_search("")
        agents.select("tocker")  # one agent selected: its lines only
        await wait_for(pilot, lambda: logs.shown and {a for a, _ in logs.shown} == {"tocker"})
        # restart: a fresh container from the current definition, running again
        old_id = agents.row("ticker").container_id
        agents.select("ticker")
        await pilot.pause()
        await pilot.press("r")
        row = await wait_for(pilot, lambda: (r := agents.row("ticker")).running
                             and r.container_id not in (None, old_id) and r, 60, what="restarted")
        assert container_status(docker_client, row.container_id) == "running"


async def test_exec_opens_a_shell_tab_and_closing_it_leaves_the_agent_running(
        workspace, docker_client, agent_image):
    add_agent(workspace, "worker", command="[sh, -c, 'echo agent-up; sleep 600']")
    app = console(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("worker"))
        agents.select("worker")
        await pilot.pause()
        await pilot.press("e")  # not running yet: refused with a reason
        await wait_for(pilot, lambda: any("not running" in str(n.message)
                                          for n in app._notifications))
        await pilot.press("s")
        row = await wait_for(pilot, lambda: (r := agents.row("worker")) and r.container_id and r, 60)
        await pilot.press("e")
        tabs = app.query_one("#views")
        await wait_for(pilot, lambda: (tabs.active or "").startswith("view-exec-"), 30,
                       what="the shell tab")
        shell = app.focused
        assert shell is not None and shell.session is not None
        await type_line(pilot, "echo in-shell-$((20+1))")
        await wait_for(pilot, lambda: "in-shell-21" in screen_text(shell), 30)
        await type_line(pilot, "exit")
        await wait_for(pilot, lambda: tabs.active == "view-terminal", 30, what="tab closed on exit")
        panes = [p.id for p in app.query("#views TabPane")]
        assert not [p for p in panes if p.startswith("view-exec-")] and app.focused is agents
        assert container_status(docker_client, row.container_id) == "running"


async def test_a_start_that_fails_says_why_and_changes_nothing(workspace, docker_client):
    add_agent(workspace, "ghost", command="[sh]", image="crowdtui-test-missing:none")
    app = console(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("ghost"))
        agents.select("ghost")
        await pilot.pause()
        await pilot.press("s")
        await wait_for(pilot, lambda: any(n.severity == "error" and "start ghost failed" in str(n.message)
                                          for n in app._notifications), 60, what="the failure")
        message = next(str(n.message) for n in app._notifications if n.severity == "error")
        assert "crowdtui-test-missing:none" in message and "\n" not in message
        assert agents.row("ghost").state == "stopped"
    from crowdtui.runtime import labels
    assert docker_client.containers.list(all=True, filters={
        "label": f"{labels.WORKSPACE}={workspace.id}"}) == []


async def test_without_a_docker_engine_the_console_says_so_and_still_works(workspace, store,
                                                                          monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    add_agent(workspace, "alice")
    app = CrowdApp(workspace, hub=False, watch_roster=False, poll_interval=0.05)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.docker_error and agents.row("alice"), 60)
        assert "no Docker engine answers" in app.docker_error
        assert "docker ✗" in str(app.query_one("#status-bar").render())
        agents.select("alice")
        await pilot.pause()
        await pilot.press("s")
        await wait_for(pilot, lambda: any("cannot start: containers are unavailable" in str(n.message)
                                          for n in app._notifications))
        # the store side keeps working
        await store.send_message("alice", "operator", "still here")
        await wait_for(pilot, lambda: agents.row("operator").unread == 1)


class BellCounting(CrowdApp):
    bells = 0

    def bell(self) -> None:
        self.bells += 1
        super().bell()


async def test_a_bell_or_an_idle_prompt_in_a_terminal_makes_the_agent_wait(
        workspace, docker_client, agent_image):
    add_agent(workspace, "asker", command="[sh, -c, 'sleep 4; printf \"Continue? [y/N] \"; "
                                          "sleep 600']")
    add_agent(workspace, "ringer", command="[sh, -c, 'sleep 4; printf \"done, need you\\a\\n\"; "
                                           "sleep 600']")
    add_agent(workspace, "quiet", command="[sh, -c, 'echo working; sleep 600']")
    app = BellCounting(workspace, hub=False, watch_roster=False, poll_interval=0.1,
                       live_stats=False, idle_prompt_after=2.0)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("ringer"))
        for name in ("asker", "quiet", "ringer"):
            agents.select(name)
            await pilot.pause()
            await pilot.press("s")
            await wait_for(pilot, lambda: agents.row(name).running, 60, what=f"{name} running")
        agents.select("operator")
        await pilot.pause()
        await wait_for(pilot, lambda: agents.row("ringer").state == "waiting for input"
                       and agents.row("asker").state == "waiting for input", 60,
                       what="both flagged")
        assert [r.name for r in agents.rows_shown][:3] == ["operator", "asker", "ringer"]
        assert agents.row("ringer").note == "rang the bell"
        assert agents.row("asker").note == "prompt waiting"
        assert agents.row("quiet").state == "running"
        assert app.bells >= 2
        # looking at the terminal answers the bell
        agents.select("ringer")
        await wait_for(pilot, lambda: agents.row("ringer").state == "running", 30,
                       what="bell answered")


async def test_a_container_started_again_gets_its_terminal_back(workspace, docker_client, agent_image):
    """The same container stopped and started again (as after an engine restart: same id, a
    new attach stream): the console's terminal re-attaches by itself and takes keys again."""
    add_agent(workspace, "shell", command="[bash]")
    app = console(workspace)
    async with app.run_test(size=(140, 40)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: app.runtime is not None and agents.row("shell"),
                       what="runtime connected and roster loaded")
        agents.select("shell")
        await pilot.pause()
        await pilot.press("s")
        row = await wait_for(pilot, lambda: (r := agents.row("shell")) and r.running and r, 60,
                             what="shell running")
        pane = app.query_one(TerminalPane)
        await wait_for(pilot, lambda: pane.terminal is not None, what="terminal attached")
        first = pane.session
        container = docker_client.containers.get(row.container_id)
        await asyncio.to_thread(container.restart, timeout=1)
        await wait_for(pilot, lambda: pane.session is not None and pane.session is not first
                       and not pane.stale, 60, what="the terminal re-attached to the restarted container")
        assert pane.container_id == row.container_id  # the same container
        pane.session.write(b"echo back-$((5*5))\n")  # what the widget sends for typed keys
        await wait_for(pilot, lambda: pane.terminal is not None and "back-25" in screen_text(pane.terminal), 30,
                       what="input reaches the restarted container and its output the pane")
