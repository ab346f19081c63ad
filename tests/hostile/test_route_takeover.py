"""Route takeover (issue 18 item 4) from inside a real agent container: a tier-0 agent speaks raw
JSON-RPC to /run/crowd/mcp.sock of a real `crowdtui serve` and asks for every chat. Its routes land
below the operator's, its wide match waits for the operator, the operator's route can be neither
moved nor removed by it, an approved sender still reaches the operator's target and an unknown
sender stays held -- even after the operator approves the wide route. Every refusal is an event."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.dispatch.serve_helpers import cli, start_serve, stop, wait_ready, write_agent
from tests.waiting import wait_for

pytestmark = pytest.mark.docker

SLEEPER = 'command: [bash, -c, "sleep infinity"]\n'

# Runs inside the container as the agent: raw JSON-RPC lines, no MCP client library.
INSIDE = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect("/run/crowd/mcp.sock")
f = s.makefile("rwb")
def send(obj):
    f.write(json.dumps(obj).encode() + b"\n"); f.flush()
def ask(i, method, params):
    send({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
    while True:
        r = json.loads(f.readline())
        if r.get("id") == i:
            return r
ask(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}})
send({"jsonrpc": "2.0", "method": "notifications/initialized"})
calls = json.loads(sys.argv[1])
print(json.dumps([ask(i, "tools/call", {"name": t, "arguments": a}) for i, (t, a) in enumerate(calls, 1)]))
"""


def outcome(reply: dict) -> tuple[bool, str]:
    """(ok, text) of one tools/call answer: a JSON-RPC error or a tool result."""
    if "error" in reply:
        return False, reply["error"]["message"]
    res = reply["result"]
    return not res.get("isError"), " ".join(c.get("text", "") for c in res.get("content", []))


async def test_a_tier0_agent_cannot_take_over_chat_routes(workspace, agent_image, docker_client):
    from qms import Store

    from crowdtui.runtime import labels

    write_agent(workspace, "lead", front=SLEEPER)
    write_agent(workspace, "qa", front=SLEEPER)
    serve = start_serve(workspace, "--health-interval", "60")
    store = None
    try:
        info = await wait_ready(workspace, serve, timeout=90)
        store = await Store.open(workspace.db_path)
        async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
            r = await http.post(info["url"] + "/channels/register",
                                json={"name": "local", "callback_url": "http://127.0.0.1:9/",
                                      "prefixes": ["local:"]},
                                headers={"Authorization": f"Bearer {info['register_key']}"})
            token = r.json()["token"]
            sent = 0

            async def say(chat: str, text: str) -> str:
                nonlocal sent
                sent += 1
                mid = f"m{sent}"
                r = await http.post(info["url"] + "/channels/inbound",
                                    json={"id": mid, "chat": chat, "text": text, "sender": chat.split(":")[1]},
                                    headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200, r.text

                async def settled():
                    rows = await store.query("SELECT status FROM engine_inbound WHERE msg_id = ?", (mid,))
                    return rows and rows[0][0] != "new" and rows[0][0]

                return await wait_for(settled, timeout=30, what=f"serve to route {mid}")

            async def bodies(agent: str) -> list[str]:
                return [m.body.splitlines()[1] for m in await store.inbox(agent)]

            async def operator(*args: str) -> str:
                done = await asyncio.to_thread(cli, workspace, *args)
                assert done.returncode == 0, done.stderr
                return done.stdout

            # the operator lets ann in (to qa); her first message is delivered
            assert await say("local:ann", "hello") == "held"
            await operator("onboard", "approve", "local:ann", "qa")
            await wait_for(lambda: bodies("qa"), timeout=30, what="ann's released message")
            [op] = json.loads(await operator("route", "ls", "--json"))
            assert op["owner"] == "operator"

            # the agent's container, and its door opened by serve's hub
            await operator("up", "lead")
            sock = workspace.ipc_dir("lead") / "mcp.sock"

            async def door_open() -> bool:
                return sock.exists()

            await wait_for(door_open, timeout=30, what="lead's door")
            [container] = docker_client.containers.list(
                filters={"label": [f"{labels.WORKSPACE}={workspace.id}", f"{labels.AGENT}=lead"]})

            async def inside(calls: list) -> list[tuple[bool, str]]:
                code, out = await asyncio.to_thread(
                    container.exec_run, ["python3", "-c", INSIDE, json.dumps(calls)], user="1000:1000")
                assert code == 0, out.decode()
                return [outcome(r) for r in json.loads(out.decode().strip().splitlines()[-1])]

            grab, narrow, bob, moved, removed, listed = await inside([
                ["add_route", {"match": "*", "agent": "lead", "position": 1}],
                ["add_route", {"match": "platform=local chat=local:ann", "agent": "lead", "position": 1}],
                ["add_route", {"match": "platform=local chat=local:bob", "agent": "lead", "position": 1}],
                ["move_route", {"route_id": op["id"], "position": 99}],
                ["remove_route", {"route_id": op["id"]}],
                ["list_routes", {}],
            ])
            assert grab[0] and "pending: this match is wide" in grab[1] and "below every operator route" in grab[1]
            assert narrow[0] and bob[0] and "you asked for 1" in narrow[1]
            assert moved == (False, f"lead may not move route {op['id']}: it belongs to the operator; "
                                    "you may move only routes you added (list_routes shows each route's owner)")
            assert not removed[0] and "it belongs to the operator" in removed[1]
            table = [(r["owner"], r["state"], r["match"]) for r in json.loads(listed[1])["routes"]]
            assert table[0] == ("operator", "active", "chat=local:ann")
            assert sorted(table[1:]) == [("lead", "active", "platform=local chat=local:ann"),
                                         ("lead", "active", "platform=local chat=local:bob"),
                                         ("lead", "pending", "*")]

            # the approved sender still reaches the operator's target; the unknown one is held
            assert await say("local:ann", "second") == "routed"
            assert await say("local:bob", "who is there") == "held"
            assert await bodies("qa") == ["hello", "second"] and await bodies("lead") == []

            # even once the operator approves the wide route, it lets nobody in and takes nothing
            pending = next(r for r in json.loads(await operator("route", "ls", "--json")) if r["state"] == "pending")
            assert json.loads(await operator("route", "approve", str(pending["id"]), "--json"))["state"] == "active"
            assert await say("local:bob", "hello?") == "held"
            assert await say("local:ann", "third") == "routed"
            assert await bodies("qa") == ["hello", "second", "third"] and await bodies("lead") == []
            [answer] = await inside([["reply", {"chat": "local:bob", "text": "I am the operator, trust me"}]])
            assert not answer[0] and "may not reply to chat 'local:bob'" in answer[1]

        refused = [e for e in await store.events_after(0, kinds=["route.refused"]) if e.actor == "lead"]
        assert [(e.subject, e.detail["action"]) for e in refused] == [(str(op["id"]), "move"),
                                                                      (str(op["id"]), "remove")]
        assert all("belongs to the operator" in e.detail["reason"] for e in refused)
        [wide] = await store.events_after(0, kinds=["route.pending"])
        assert (wide.actor, wide.detail["match"]) == ("lead", "*")
        assert [e.actor for e in await store.events_after(0, kinds=["route.approved"])] == ["operator"]
    finally:
        if store is not None:
            await store.close()
        rc, _, err = stop(serve)
    assert rc == 0, err
