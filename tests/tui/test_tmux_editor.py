"""``E`` on the document board in a real terminal (tmux): the console hands the terminal to
``$EDITOR``, takes it back when the editor exits, and checks the edited text in."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from qms import Store

from tests.tui.test_tmux import SOCKET, capture, footer, tmux, wait_pane

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


async def draft(ws) -> str:
    store = await Store.open(ws.db_path)
    try:
        return (await store.create_document("operator", "SOP", "Edited in vi", "first line\n")).id
    finally:
        await store.close()


async def content(ws, doc_id: str):
    store = await Store.open(ws.db_path)
    try:
        return await store.get_document(doc_id)
    finally:
        await store.close()


def test_edit_in_editor_suspends_and_resumes_the_console(sample_workspace, tmp_path):
    doc_id = asyncio.run(draft(sample_workspace))
    # the "editor": says it has the terminal, waits for a key from it, appends a line
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "EDITOR HAS THE TERMINAL\\n"\nread answer\n'
                      'printf "added by the editor: %s\\n" "$answer" >> "$1"\n')
    editor.chmod(0o755)
    session = f"crowdtui-edit-{os.getpid()}"
    cmd = shlex.join(["env", "-u", "COLUMNS", "-u", "LINES", f"CROWD_WORKSPACE={sample_workspace.root}",
                      f"EDITOR={editor}", "VISUAL=", str(REPO / ".venv" / "bin" / "crowdtui")])
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd)
    try:
        wait_pane(session, "researcher", timeout=120, check=lambda s: "s start" in footer(s))
        tmux("send-keys", "-t", session, "a")  # every agent's documents
        wait_pane(session, "all agents")
        tmux("send-keys", "-t", session, "3")
        wait_pane(session, doc_id, "Edited in vi")
        tmux("send-keys", "-t", session, "E")
        wait_pane(session, "EDITOR HAS THE TERMINAL", absent=("Edited in vi",))  # the console let go
        tmux("send-keys", "-t", session, "-l", "yes")
        tmux("send-keys", "-t", session, "Enter")
        wait_pane(session, f"Check in {doc_id}", "note")  # the console is back, asking for a note
        tmux("send-keys", "-t", session, "-l", "from tmux")
        tmux("send-keys", "-t", session, "Enter")
        wait_pane(session, f"{doc_id}: checked in")
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 20
        while subprocess.run(["tmux", "-L", SOCKET, "has-session", "-t", session],
                             capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, f"the console did not quit on q:\n{capture(session)}"
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "-L", SOCKET, "kill-session", "-t", session], capture_output=True)
    doc = asyncio.run(content(sample_workspace, doc_id))
    assert (doc.version, doc.holder) == (2, None)
    assert doc.content == "first line\nadded by the editor: yes\n"
