"""The operator answers permission requests from a chat channel: requests are announced to the
operator's chats (crowd.toml [approvals] operator_chats), ``/allow`` and ``/reject`` there
answer them in the routing transaction, the same words from any other chat are refused, and
every answer and refusal is an event. A real store, a recording channel on 127.0.0.1, the
real request_permission waiting for the answer."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.dispatch import inbound as inb
from crowdtui.dispatch.approval_chat import operator_chats
from crowdtui.dispatch.service import Dispatch, DispatchConfig
from crowdtui.hub.approvals import request_permission
from qms import permissions
from qms.errors import InvalidInput
from tests.waiting import wait_for

OPS = "platform=local chat=local:ops sender=ann"


@pytest.fixture
async def ops(store, clock, channel):
    d = Dispatch(store, clock=clock, config=DispatchConfig(operator_chats=(OPS,)), log=lambda line: None)
    import httpx

    d._http = httpx.AsyncClient(timeout=10, trust_env=False)  # steps only, no loops
    d.ch, _ = await d.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])
    await d.announcer.start()
    yield d
    await d.stop()


async def say(d, chat: str, text: str, sender: str = "ann", n=[0]) -> None:
    n[0] += 1
    await d.receive(d.ch, inb.parse_inbound({"id": f"m{n[0]}", "chat": chat, "text": text, "sender": sender}))
    await d.route_pending()
    await d.send_due()


def texts(channel, chat: str) -> list[str]:
    return [m["text"] for m in channel.sent if m["chat"] == chat and m["text"]]


async def pending(store, n: int):
    return await wait_for(lambda: _pending(store, n), timeout=10, what=f"{n} pending request(s)")


async def _pending(store, n):
    rows = await permissions.list_requests(store)
    return rows if len(rows) == n else None


async def test_a_request_is_announced_and_the_operator_allows_it_from_the_chat(ops, store, channel):
    waiting = asyncio.create_task(request_permission(store, agent="helper", tool="edit", title="Write a.txt",
                                                     diff="+a\n+b\n", timeout=30))
    try:
        [req] = await pending(store, 1)
        assert await ops.announcer.announce(await ops.announcer.follower.read()) == 1
        await ops.send_due()
        [announced] = texts(channel, "local:ops")
        assert announced.startswith("helper asks permission for edit: Write a.txt (3 lines of diff)")
        assert f"/allow {req.id} or /allow {req.id} always, /reject {req.id}" in announced

        await say(ops, "local:ops", "/approvals")
        assert texts(channel, "local:ops")[-1].startswith(f"{req.id}: helper asks permission for edit: Write a.txt")
        await say(ops, "local:stranger", f"/allow {req.id}")  # not the operator's chat
        assert "only the operator's chats answer" in texts(channel, "local:stranger")[-1]
        await say(ops, "local:ops", f"/allow {req.id}", sender="mallory")  # the chat, but not the operator
        assert "only the operator's chats answer" in texts(channel, "local:ops")[-1]
        await say(ops, "local:ops", "/allow soon")
        assert "is not a number" in texts(channel, "local:ops")[-1]
        assert not waiting.done()

        await say(ops, "local:ops", f"/allow {req.id}")
        assert texts(channel, "local:ops")[-1] == f"request {req.id} of helper (edit): allow_once"
        decision = await asyncio.wait_for(waiting, 10)
        assert (decision.outcome, decision.answered_by) == ("allow_once", "operator")
        await say(ops, "local:ops", f"/reject {req.id}")
        assert "is answered already" in texts(channel, "local:ops")[-1]
        [answered] = await store.events_after(0, kinds="permission.answered")
        assert (answered.actor, answered.detail["via"], answered.detail["chat"]) == ("operator", "chat", "local:ops")
        [refused] = await store.events_after(0, kinds="permission.refused")
        assert (refused.actor, refused.detail["chat"], refused.detail["outcome"]) == \
            ("operator", "local:ops", "reject_once")
        # no message reached an agent's inbox: the commands were the operator's, not a chat's
        assert await store.inbox("helper") == [] and await store.inbox("lead") == []
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


async def test_reject_always_from_the_chat_makes_a_rule_and_the_next_request_is_not_announced(ops, store, channel):
    first = asyncio.create_task(request_permission(store, agent="lead", tool="execute", title="rm -rf build",
                                                   timeout=30))
    [req] = await pending(store, 1)
    await say(ops, "local:ops", f"/reject {req.id} always")
    assert texts(channel, "local:ops")[-1] == \
        f"request {req.id} of lead (execute): reject_always; lead's execute requests are rejected from now on"
    assert (await asyncio.wait_for(first, 10)).outcome == "reject_always"
    again = await request_permission(store, agent="lead", tool="execute", title="rm -rf dist", timeout=30)
    assert (again.outcome, again.answered_by) == ("reject_always", "rule")
    assert await ops.announcer.announce(await ops.announcer.follower.read()) == 0  # both closed already
    assert [r.tool for r in await permissions.list_rules(store, "lead")] == ["execute"]


async def test_a_running_dispatch_announces_by_itself(store, channel):
    d = Dispatch(store, config=DispatchConfig(operator_chats=(OPS,)), log=lambda line: None)
    await d.start()
    waiting = asyncio.create_task(request_permission(store, agent="qa", tool="edit", title="x", timeout=30))
    try:
        await d.register(name="local", platform="local", callback_url=channel.url, prefixes=["local:"])
        await wait_for(lambda: texts(channel, "local:ops"), timeout=20, what="the announcement")
        assert texts(channel, "local:ops")[0].startswith("qa asks permission for edit: x")
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await d.stop()


def test_operator_chats_must_pin_one_chat():
    assert len(operator_chats({"operator_chats": [OPS]})) == 1
    for bad in (["platform=local"], ["chat=local:ops"], ["platform=local chat=local:*"], "platform=local",
                ["nonsense"]):
        with pytest.raises(InvalidInput, match=r"\[approvals\] operator_chats"):
            operator_chats({"operator_chats": bad})
