"""The console with a Claude Code agent in mode: acp (the real adapter in the real image, the
model the Anthropic stand-in): a prompt typed in the agent's pane makes the adapter ask for
permission, the request waits in the crew's queue with its diff, allowing it finishes the
turn in the pane; T shows the same agent's raw terminal."""

from __future__ import annotations

import asyncio

import pytest

from tests.standins.anthropic import AnthropicStandIn, Turn
from tests.waiting import wait_for_app as wait_for

pytestmark = pytest.mark.docker

NOTE = "/tmp/quill-console.md"


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press({" ": "space", "-": "minus"}.get(ch, ch))


async def test_a_prompt_typed_in_the_console_asks_permission_and_finishes(acp_crew, store, workspace):
    from crowdtui.hub.approvals import answer_permission, pending_requests
    from crowdtui.tui.app import CrowdApp
    from crowdtui.tui.widgets.agent_list import AgentList
    from crowdtui.tui.widgets.conversation_view import ConversationView
    from crowdtui.tui.widgets.terminal_pane import TerminalPane

    turns = [Turn(name="w", when="write the console note", tool="mcp__acp__Write",
                  input={"file_path": NOTE, "content": "from the console\n"}),
             Turn(name="done", when="toolu_w", text="The note is written.")]
    standin = AnthropicStandIn(turns, host="127.0.0.2", port=acp_crew["port"]).start()
    try:
        await acp_crew["hub"].open_door("quill")
        await acp_crew["runtime"].start(acp_crew["roster"].get("quill"))
        app = CrowdApp(workspace, store=store, hub=False, watch_roster=False, poll_interval=0.1, live_stats=False)
        async with app.run_test(size=(140, 40)) as pilot:
            agents = app.query_one(AgentList)
            await wait_for(pilot, lambda: app.runtime is not None and (r := agents.row("quill")) and r.running,
                           60, what="quill running in the console")
            agents.select("quill")
            pane = app.query_one(TerminalPane)
            view = await wait_for(pilot, lambda: pane.conversation, 120, what="the conversation view")
            assert isinstance(view, ConversationView) and pane.terminal is None
            await pilot.press("t")  # t focuses the prompt line of a mode: acp agent
            await type_text(pilot, "write the console note")
            await pilot.press("enter")
            [request] = await _pending(pilot, store, pending_requests)
            assert request.title == f"Write {NOTE}" and "+from the console" in (request.diff or "")
            await answer_permission(store, request.id, "allow_once", "operator")
            try:
                # the pane of the moment (a re-attach may have replaced the view; the turn is the agent's)
                await wait_for(pilot, lambda: (v := pane.conversation) is not None and not v.busy
                               and "The note is written." in v.transcript(), 90, what="the turn's end in the pane")
                view = pane.conversation
            except AssertionError:
                agent = view.agent
                events = [(e.kind, e.actor, e.detail) for e in await store.events_after(0, limit=100000)
                          if e.kind.startswith(("acp.", "permission."))]
                print("EVENTS", events)
                print("STATUS", view.query_one("#acp-status").render())
                raise AssertionError(f"pane: {view.transcript()!r}; notes: {agent.notes}; busy: {view.busy}; "
                                     f"screen: {app.screen!r}; stderr: {agent.stderr_text()[-800:]!r}") from None
            shown = view.transcript()
            assert "you › write the console note" in shown
            assert f"✓ tool Write {NOTE}  [completed]" in shown and "+ from the console" in shown
            # the raw terminal of the same agent is one key away
            await pilot.press("ctrl+right_square_bracket")
            await pilot.press("T")
            await wait_for(pilot, lambda: pane.terminal is not None and pane.conversation is None, 30,
                           what="the raw terminal")
            await pilot.press("T")
            await wait_for(pilot, lambda: pane.conversation is not None, 30, what="the conversation again")
            assert "The note is written." in pane.conversation.transcript()  # the same session
        container = await acp_crew["runtime"].container("quill")
        code, out = await asyncio.to_thread(container.exec_run, ["cat", NOTE])
        assert (code, out) == (0, b"from the console\n")
    finally:
        standin.stop()


async def _pending(pilot, store, pending_requests):
    async def some():
        return await pending_requests(store, ["quill"])

    for _ in range(900):
        found = await some()
        if found:
            return found
        await pilot.pause(0.1)
    raise AssertionError("no permission request from quill")
