"""Untrusted text is shown inert: escapes and control characters never reach the screen."""

from __future__ import annotations

from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.text import inert, safe
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.inbox_view import InboxView
from crowdtui.tui.widgets.logs_view import LogsView
from tests.tui.conftest import add_agent, store_app, wait_for

HOSTILE = "\x1b[2J\x1b]0;pwned\x07[bold]x[/bold]\x9b31m\r\nline2\u202eevil"
RAW = ("\x1b", "\x07", "\x9b", "\r", "\u202e")


def assert_inert_screenshot(svg: str) -> None:
    for ch in RAW:
        assert ch not in svg, f"{ch!r} reached the screen"


def test_inert_makes_every_control_character_visible():
    out = inert(HOSTILE)
    assert not any(ch in out for ch in RAW)
    assert out.startswith("\\x1b[2J\\x1b]0;pwned\\x07[bold]x[/bold]\\x9b31m\\x0d⏎line2\\u202e")
    assert inert("a\nb", multiline=True) == "a\nb"
    text = safe("[bold]x[/bold]")
    assert text.plain == "[bold]x[/bold]" and not text.spans  # never markup


async def test_hostile_message_document_and_log_text_stays_inert(workspace, store):
    add_agent(workspace, "alice")
    app = store_app(workspace)
    async with app.run_test(size=(160, 48)) as pilot:
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: agents.row("alice"))
        await store.send_message("alice", "operator", HOSTILE, priority="high")
        doc = await store.create_document("alice", "SOP", "Plain title", HOSTILE)
        app.query_one(LogsView).add_lines([("alice", HOSTILE)])
        await wait_for(pilot, lambda: agents.row("operator").unread == 1)
        agents.select("operator")
        await pilot.press("2")
        inbox = app.query_one(InboxView)
        await wait_for(pilot, lambda: inbox.current is not None)
        await pilot.pause(0.2)
        svg = app.export_screenshot()
        assert_inert_screenshot(svg)
        assert "[bold]x[/bold]" in svg and "pwned" in svg  # shown, literally
        assert app.title == "crowdtui · ws"

        for view in ("4", "5"):
            await pilot.press(view)
            await pilot.pause(0.2)
            assert_inert_screenshot(app.export_screenshot())
        assert app.query_one(ActivityView).events

        await pilot.press("a", "3")
        await pilot.pause(0.2)
        app.push_screen(DocumentScreen(doc.id))
        screen = await wait_for(pilot, lambda: isinstance(app.screen, DocumentScreen) and app.screen)
        await wait_for(pilot, lambda: screen.doc is not None)
        await pilot.pause(0.2)
        svg = app.export_screenshot()
        assert_inert_screenshot(svg)
        assert "pwned" in svg
        assert app.title == "crowdtui · ws"


async def test_hostile_window_title_in_the_console_terminal_stays_inert(workspace, store):
    """An agent's program sets a window title made of broken markup, a click action and
    control characters: the console keeps running and its terminal border shows it literally."""
    import sys

    from textual.geometry import Region

    from crowdtui.tui.widgets.terminal import Terminal
    from crowdtui.tui.widgets.terminal_pane import TerminalPane
    from tests.terminal.local_pty import LocalPtySession

    title = "[/broken [@click=app.quit]x[/] [bold]b\x08\u202e"
    program = ("import os, sys, time\n"
               f"os.write(1, b'\\x1b]0;' + {title.encode()!r} + b'\\x07title-set\\r\\n')\n"
               "sys.stdin.read()\n")
    add_agent(workspace, "alice")
    session = LocalPtySession([sys.executable, "-c", program])
    app = store_app(workspace)
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            agents = app.query_one(AgentList)
            await wait_for(pilot, lambda: agents.row("alice"))

            async def get_session(container_id):
                return session

            await pilot.press("1")  # the terminal view
            pane = app.query_one(TerminalPane)
            await wait_for(pilot, lambda: pane.size.width > 60, what="the terminal view")
            await pane.attach("alice", "local-pty", get_session, focus=True)
            term = await wait_for(pilot, lambda: isinstance(pane.terminal, Terminal) and pane.terminal)
            await wait_for(pilot, lambda: "title-set" in "\n".join(term.emulator.text()), what="the program")
            await wait_for(pilot, lambda: term._title == title, what="the title taken")
            await wait_for(pilot, lambda: term.size.width > 60 and pane.terminal is term, what="the terminal shown")
            border = term.render_lines(Region(0, 0, term.outer_size.width, 1))[0]
            assert f" {inert(title)} · ctrl+] releases" in border.text
            assert not any(seg.style and seg.style.meta for seg in border)  # no @click
            x = border.text.index("]x[") + 1
            svg = app.export_screenshot()
            assert_inert_screenshot(svg)
            assert "@click=app.quit" in svg and "\\x08" in svg  # shown, literally
            await pilot.click(term, offset=(x, 0))  # where the title's "x" is drawn: no action
            await pilot.pause(0.2)
            assert app.is_running and app.return_code is None
            await pilot.press("ctrl+right_square_bracket")  # the border is redrawn unfocused
            await pilot.pause(0.2)
            assert app.is_running and app.return_code is None
            assert app.title == "crowdtui · ws"
    finally:
        session.close()
