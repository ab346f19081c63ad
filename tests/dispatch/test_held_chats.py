"""Held chats have one home for the operator's answers (crowdtui.dispatch.onboarding): the CLI
(`crowdtui onboard approve|deny`, run here as a real process on the real store file) prints
the same line the console shows, and anyone but the operator is refused and recorded."""

from __future__ import annotations

import asyncio
import sys

import pytest
from qms.errors import PermissionDenied

from crowdtui.dispatch import inbound as inb
from crowdtui.dispatch.onboarding import approve_held_chat, deny_held_chat, list_holds


async def _hold(dispatch, channel, chat: str, texts: list[str]) -> None:
    ch, _ = await dispatch.register(name="local", platform="local", callback_url=channel.url,
                                  prefixes=["local:"], callback_token="cb-secret")
    for i, text in enumerate(texts, start=1):
        await dispatch.receive(ch, inb.parse_inbound({"id": f"{chat}-{i}", "chat": chat, "text": text,
                                                    "sender": "ann", "sender_name": "Ann"}))
    await dispatch.route_pending()


async def _crowdtui(workspace, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crowdtui", "-w", str(workspace.root), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_approves_and_denies_through_the_one_home(dispatch, store, channel, workspace):
    await _hold(dispatch, channel, "local:stranger", ["hi", "anyone?"])
    await _hold(dispatch, channel, "local:spammer", ["buy"])

    code, out, err = await _crowdtui(workspace, "onboard", "approve", "local:stranger", "helper")
    assert code == 0, err
    route = (await store.events_after(0, kinds=["onboard.approved"]))[-1]
    assert out.strip() == (f"chat local:stranger -> helper (route {route.detail['route']}); "
                           "2 held messages released (a running serve delivers them)")
    assert route.actor == "operator" and route.detail["released"] == 2

    code, out, err = await _crowdtui(workspace, "onboard", "deny", "local:spammer")
    assert code == 0, err
    assert out.strip() == "dropped 1 held message of chat local:spammer"
    assert [h.chat for h in await list_holds(store)] == []


async def test_only_the_operator_may_answer_and_a_refusal_is_an_event(dispatch, store, channel):
    await _hold(dispatch, channel, "local:stranger", ["hi"])
    with pytest.raises(PermissionDenied, match="only the operator"):
        await approve_held_chat(store, "local:stranger", "helper", actor="lead")
    with pytest.raises(PermissionDenied, match="only the operator"):
        await deny_held_chat(store, "local:stranger", actor="lead")
    refused = await store.events_after(0, kinds=["route.refused"])
    assert [(e.actor, e.subject, e.detail["action"]) for e in refused] == [
        ("lead", "local:stranger", "onboard.approve"), ("lead", "local:stranger", "onboard.deny")]
    assert [(h.chat, h.count) for h in await list_holds(store)] == [("local:stranger", 1)]
