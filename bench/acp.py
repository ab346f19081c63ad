"""ACP permission requests: from the agent's request to the agent holding the answer, beside a
bare JSON-RPC round trip over the same path.

    .venv/bin/python bench/acp.py [--asks 50] [--echoes 500]

An agent container (the agent image) runs a small ACP agent (standard library, started by
crowdtui's :class:`~crowdtui.hub.acp.session.AcpAgent` over the same ``docker exec`` path as a
real adapter). On the prompt it times, with its own clock:

* ``permission``: ``session/request_permission`` sent -> the answer read, where the answer
  comes through the crew's queue (a request row and event in the store, an answerer in the
  same process that looks at the pending requests every 5 ms and allows each at once, the
  answer's commit waking the waiting side);
* ``bare``: a request crowdtui answers at once (an unknown method: the error answer), i.e.
  the same stdio, exec socket, multiplexing and JSON-RPC connection with nothing behind it.

Prints p50/p99 of each and their ratio. Needs the Docker engine and the agent image.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AGENT = r'''
import json, sys, time
out = sys.stdout
def send(m):
    out.write(json.dumps(m) + "\n"); out.flush()
def read():
    return json.loads(sys.stdin.readline())
rid = 1000
def ask(method, params):
    global rid
    rid += 1
    t = time.perf_counter()
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    while True:
        m = read()
        if m.get("id") == rid and "method" not in m:
            return time.perf_counter() - t
while True:
    line = sys.stdin.readline()
    if not line:
        break
    m = json.loads(line)
    method = m.get("method")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": 1, "agentCapabilities": {},
              "agentInfo": {"name": "bench-agent", "version": "1"}}})
    elif method == "session/new":
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"sessionId": "bench"}})
    elif method == "session/prompt":
        asks, echoes = (int(x) for x in m["params"]["prompt"][0]["text"].split())
        opts = [{"optionId": "allow", "name": "Allow", "kind": "allow_once"},
                {"optionId": "reject", "name": "Reject", "kind": "reject_once"}]
        perm = [ask("session/request_permission", {"sessionId": "bench", "options": opts,
                    "toolCall": {"toolCallId": f"t{i}", "title": f"Write /tmp/bench-{i}", "rawInput": {"i": i}}})
                for i in range(asks)]
        bare = [ask("bench/echo", {"sessionId": "bench"}) for _ in range(echoes)]
        send({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "bench", "update": {
              "sessionUpdate": "agent_message_chunk", "content": {"type": "text",
              "text": json.dumps({"permission": perm, "bare": bare})}}}})
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"stopReason": "end_turn"}})
'''


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def answerer(store, stop: asyncio.Event) -> int:
    """The operator, as fast as a process following the queue can be: allow every request."""
    from crowdtui.hub.approvals import answer_permission, pending_requests

    answered = 0
    while not stop.is_set():
        for request in await pending_requests(store, ["bench"]):
            await answer_permission(store, request.id, "allow_once", "operator")
            answered += 1
        await asyncio.sleep(0.005)
    return answered


async def main(asks: int, echoes: int) -> None:
    import docker

    from crowdtui.hub.acp.session import AcpAgent
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.image import ensure_image
    from crowdtui.workspace import init_workspace

    client = docker.from_env()
    await asyncio.to_thread(ensure_image, client, lambda line: None)
    with tempfile.TemporaryDirectory(prefix="bench-acp-") as tmp:
        ws, _ = init_workspace(Path(tmp) / "ws", sample=False)
        (ws.agents_dir / "bench").mkdir(parents=True, exist_ok=True)
        (ws.agents_dir / "bench" / "AGENT.md").write_text("---\nname: bench\n---\nbench agent\n")
        (ws.root / "bench_agent.py").write_text(AGENT)
        store = await ws.open_store()
        roster = load_roster(ws)
        await sync_roster(store, roster)
        runtime = Runtime(ws, client=client, store=store)
        agent = None
        try:
            await runtime.start(roster.get("bench"))
            agent = await AcpAgent(store, runtime, roster.get("bench"),
                                   command=["python3", "/workspace/bench_agent.py"]).start()
            stop = asyncio.Event()
            answering = asyncio.create_task(answerer(store, stop))
            await agent.prompt(f"{asks} {echoes}")
            stop.set()
            await answering
            said = [e.text for e in agent.conversation.entries if getattr(e, "role", "") == "agent"][-1]
            times = json.loads(said)
        finally:
            if agent is not None:
                await agent.close()
            await runtime.remove("bench")
            await store.close()
            from crowdtui.runtime.disk import unmount_below

            unmount_below(Path(tmp))  # the agent's home filesystem (a loop mount) goes with the workspace
    perm, bare = [t * 1000 for t in times["permission"]], [t * 1000 for t in times["bare"]]
    print(f"ACP over docker exec, {asks} permission requests, {echoes} bare round trips")
    print(f"  bare JSON-RPC round trip     p50 {pct(bare, .5):7.2f} ms   p99 {pct(bare, .99):7.2f} ms")
    print(f"  permission through the queue p50 {pct(perm, .5):7.2f} ms   p99 {pct(perm, .99):7.2f} ms   "
          f"(mean {statistics.mean(perm):.2f} ms)")
    print(f"  ratio (p50)                  {pct(perm, .5) / pct(bare, .5):7.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asks", type=int, default=50)
    parser.add_argument("--echoes", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.asks, args.echoes))
