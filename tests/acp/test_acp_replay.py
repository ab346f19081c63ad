"""The console's conversation view over a replayed adapter run (tests/acp/recordings): the
stand-in agent (tests/acp/replay_agent.py) runs in a real agent container and speaks over the
same exec path as the real adapter; the view, the approval queue and the Activity events are
the real ones. Repeatable: no model, no adapter, no network."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.waiting import wait_for, wait_for_app

pytestmark = pytest.mark.docker

HERE = Path(__file__).parent
RECORDING = HERE / "recordings" / "write_allowed.jsonl"


@pytest.fixture
def recording() -> Path:
    return RECORDING


@pytest.fixture
async def replayed(workspace, store, agent_image, docker_client, recording):
    """scribe (a plain agent container) running the replay agent over the exec path."""
    from crowdtui.hub.acp.session import AcpAgent
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime

    folder = workspace.agents_dir / "scribe"
    folder.mkdir(parents=True)
    (folder / "AGENT.md").write_text("---\nname: scribe\n---\nReplays a recorded adapter run.\n")
    shutil.copy(HERE / "replay_agent.py", workspace.root / "replay_agent.py")
    shutil.copy(recording, workspace.root / "recording.jsonl")
    roster = load_roster(workspace)
    assert not roster.errors, roster.problems
    await sync_roster(store, roster)
    runtime = Runtime(workspace, store=store, client=docker_client)
    await runtime.start(roster.get("scribe"))
    agent = AcpAgent(store, runtime, roster.get("scribe"),
                     command=["python3", "/workspace/replay_agent.py", "/workspace/recording.jsonl"])
    try:
        yield await agent.start(), runtime
    finally:
        await agent.close()
        await runtime.remove("scribe")


async def answer_when_asked(store, outcome: str) -> int:
    from crowdtui.hub.approvals import answer_permission, pending_requests

    [request] = await wait_for(lambda: pending_requests(store, ["scribe"]), 30, "the replayed permission request")
    await answer_permission(store, request.id, outcome, "operator")
    return request.id


async def test_the_view_shows_a_replayed_turn_typed_in_its_prompt(replayed, store):
    from textual.app import App, ComposeResult

    from crowdtui.tui.widgets.conversation_view import ConversationView
    from qms.event_words import describe

    agent, runtime = replayed

    class Harness(App):
        def compose(self) -> ComposeResult:
            yield ConversationView(agent)

    app = Harness()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one(ConversationView)
        view.query_one("#acp-prompt").focus()
        await pilot.press(*"write the note")
        await pilot.press("enter")
        answered = asyncio.create_task(answer_when_asked(store, "allow_once"))
        await wait_for_app(pilot, lambda: "Written." in view.transcript() and not view.busy, 30, "the turn's end")
        await answered
        shown = view.transcript()
        assert "you › write the note" in shown
        assert "✓ tool Write /tmp/quill-note.md  [completed]" in shown
        assert "+ note from quill" in shown  # the diff
        assert "scribe › Written." in shown
    # the replayed file request was served inside scribe's container
    container = await runtime.container("scribe")
    code, out = await asyncio.to_thread(container.exec_run, ["cat", "/tmp/quill-note.md"])
    assert (code, out) == (0, b"note from quill\n")
    assert not Path("/tmp/quill-note.md").exists()
    # the Activity view's lines: one per tool call, one per turn
    lines = [describe(e) for e in await store.events_after(0, kinds=["acp.tool_call", "acp.turn"])]
    assert lines == ["scribe's tool call Write /tmp/quill-note.md: completed",
                     'scribe finished a turn (end_turn, 1 tool calls): "write the note"']


async def test_a_client_that_strays_from_the_recording_is_told(replayed):
    from crowdtui.hub.acp.connection import RpcError

    agent, _ = replayed
    with pytest.raises(RpcError, match="replay expected session/prompt"):
        await agent.conn.request("session/cancel_all", {"sessionId": agent.session_id}, timeout=10)


@pytest.mark.parametrize("recording", [HERE / "recordings" / "plan_and_thought.jsonl"])
async def test_the_view_shows_thoughts_and_the_plan(replayed, recording):
    from textual.app import App, ComposeResult

    from crowdtui.tui.widgets.conversation_view import ConversationView

    agent, _ = replayed

    class Harness(App):
        def compose(self) -> ComposeResult:
            yield ConversationView(agent)

    app = Harness()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one(ConversationView)
        view.query_one("#acp-prompt").focus()
        await pilot.press(*"make a plan")
        await pilot.press("enter")
        await wait_for_app(pilot, lambda: "Plan made." in view.transcript() and not view.busy, 30, "the turn's end")
        shown = view.transcript()
        assert "thinking › First I should list the steps." in shown
        assert "plan\n  [x] Read the style guide\n  [>] Write the summary" in shown
