"""crowd-agent prints other agents' and chat users' text inert: no control character
(ESC, C1, bidi or zero-width controls) reaches the terminal it runs in, which an
operator may be attached to (`crowdtui attach` passes the bytes through)."""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import os
import sys

from tests.waiting import wait_for

from .conftest import AGENT, BRIDGE

HOSTILE = ("hi\x1b]52;c;cHduZWQ=\x07 \x1b]0;owned\x1b\\ \x1b[6n \x9b31m \x7f \x00 \r"
           "\u202eevil\u202c \u200bzw\u2066x\u2069 tab\tok\nline two")
UNSAFE = ["\x1b", "\x07", "\x9b", "\x7f", "\x00", "\r", "\u202e", "\u202c", "\u200b", "\u2066", "\u2069"]


def load_agent():
    loader = importlib.machinery.SourceFileLoader("crowd_agent_script", str(AGENT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_out_escapes_control_characters(capsys):
    agent = load_agent()
    agent.out(f"< mallory: {HOSTILE}")
    agent.show({"title": HOSTILE, "description": HOSTILE})
    printed = capsys.readouterr().out
    for ch in UNSAFE:
        assert ch not in printed, repr(ch)
    # shown, not dropped: the reader sees that something was there
    assert "\\x1b]52;c;" in printed and "\\u202e" in printed and "\\x9b" in printed
    # newlines and tabs are text, kept as they are
    assert "tab\tok\nline two" in printed


async def test_echo_agent_prints_a_hostile_body_inert(hub, store):
    path = await hub.open_door("reviewer")
    env = {**os.environ, "CROWD_MCP_SOCKET": str(path), "CROWD_MCP_BRIDGE": f"{sys.executable} {BRIDGE}",
           "CROWD_BRIDGE_QUIET": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(AGENT), "--role", "echo", "--poll", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    try:
        await store.send_message("lead", "reviewer", HOSTILE, thread="t1")

        async def answered():
            return await store.inbox("lead")
        await wait_for(answered, 60, what="the echo agent to answer")
    finally:
        proc.terminate()
        output = (await proc.communicate())[0].decode("utf-8", "replace")
    assert "< lead: hi\\x1b]52;c;cHduZWQ=\\x07" in output  # it did print the body
    for ch in UNSAFE:
        assert ch not in output, repr(ch)
