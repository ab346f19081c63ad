"""The fault suite's figures: per fault, time to detect, time to recover and items lost
(must be 0), on this machine, with the real engine, store and sockets.

    .venv/bin/python bench/faults.py [--agents 50] [--clients 20]

  holder crash → lease   a holder's container killed; detect = its crash recorded; recover =
                         its checkout released (grace set to 1 s here; 60 s by default)
  agent crash → restart  restart: on-failure agent killed; recover = running again (1 s backoff)
  hub kill -9            a `crowdtui hub` with CLIENTS bridges calling send/get is SIGKILLed and
                         started again; detect = a bridge reports the hub gone; recover = every
                         client's calls answered again; lost = acknowledged sends not stored
  engine restart         AGENTS agents on a dockerd of its own (own network namespace; the main
                         engine is not touched) stopped (SIGTERM) and started; detect = dockerd
                         gone → engine.unreachable; recover = dockerd answers → every agent running
                         and its door answering; lost = messages sent before/during not stored
  stuck (paused)         docker pause; detect = agent.stuck; recover = unpause → agent.unstuck
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "faults"))


async def until(predicate, timeout=120.0, what="condition", every=0.02):
    from tests.waiting import wait_for

    try:
        return await wait_for(predicate, timeout, what, interval=every)
    except AssertionError as exc:
        raise SystemExit(f"bench/faults.py: {exc}") from None


def roster(ws, names, command="[sleep, infinity]", extra=""):
    for name in names:
        (ws.agents_dir / name).mkdir(parents=True, exist_ok=True)
        (ws.agents_dir / name / "AGENT.md").write_text(f"---\nname: {name}\ncommand: {command}\n{extra}---\nx\n")


class Host:
    """A store, a state follower, a hub with its policies: what `serve` assembles."""

    def __init__(self, ws, client=None):
        self.ws, self.client = ws, client

    async def __aenter__(self):
        from qms import Store

        from crowdtui.hub.hub import Hub
        from crowdtui.roster import load_roster, sync_roster
        from crowdtui.runtime.containers import Runtime
        from crowdtui.runtime.state import StateFollower

        self.store = await Store.open(self.ws.db_path)
        self.roster = load_roster(self.ws)
        await sync_roster(self.store, self.roster)
        self.runtime = Runtime(self.ws, client=self.client)
        self.follower = StateFollower(self.runtime, self.store)
        self.halt = asyncio.Event()
        self.following = asyncio.create_task(self.follower.run(self.halt))
        await self.follower.ready.wait()
        self.hub = Hub(self.ws, self.store)
        await self.hub.start()
        self.hub.follow_registry(0.1)
        self.hub.run_policies(self.runtime, announce=False, launch=False)
        return self

    async def __aexit__(self, *exc):
        await self.hub.stop()
        self.halt.set()
        self.follower.close()
        await asyncio.gather(self.following, return_exceptions=True)
        for name in self.roster.agents:
            try:
                await self.runtime.remove(name)
            except Exception:
                pass
        self.runtime.close()
        await self.store.close()

    async def state(self, name):
        return (await self.store.get_agent(name)).state


def workspace(root: Path):
    from crowdtui.workspace import init_workspace

    ws, _ = init_workspace(root / "ws", sample=False)
    return ws


async def lease_and_restart(root: Path) -> list[tuple]:
    ws = workspace(root / "a")
    roster(ws, ["holder"])
    roster(ws, ["flaky"], extra="restart: on-failure\n")
    async with Host(ws) as h:
        h.hub.supervisor.lease_grace = 1.0
        for name in ("holder", "flaky"):
            await h.runtime.start(h.roster.agents[name])
        await until(lambda: _all(h, ["holder", "flaky"], "running"), what="running")
        doc = await h.store.create_document("operator", "SOP", "Held")
        await h.store.checkout(doc.id, "holder")
        await h.store.checkin(doc.id, "holder", "acknowledged v2")
        await h.store.checkout(doc.id, "holder")
        t0 = time.monotonic()
        (await h.runtime.container("holder")).kill()
        await until(lambda: _all(h, ["holder"], "crashed"), what="holder crashed")
        detect = time.monotonic() - t0
        await until(lambda: _free(h.store, doc.id), what="lease released")
        recover = time.monotonic() - t0
        kept = await h.store.get_document(doc.id)
        lease = ("holder crash → lease released (grace 1 s)", detect, recover, 0 if kept.content == "acknowledged v2" else 1)

        t0 = time.monotonic()
        (await h.runtime.container("flaky")).kill()
        await until(lambda: _all(h, ["flaky"], "restarting", "crashed"), what="flaky crashed")
        detect = time.monotonic() - t0
        await until(lambda: h.store.events_after(0, kinds=["agent.restarted"], subject="flaky"), what="restart")
        await until(lambda: _all(h, ["flaky"], "running"), what="flaky running")
        restart = ("agent crash → restarted (on-failure, 1 s backoff)", detect, time.monotonic() - t0, 0)
    return [lease, restart]


async def _all(h, names, *states):
    return all([await h.state(n) in states for n in names])


async def _free(store, doc_id):
    return (await store.get_document(doc_id)).holder is None


async def hub_kill(root: Path, clients: int) -> tuple:
    from qms import Store

    from crowdtui.roster import load_roster, sync_roster
    from test_hub_kill import Agent, start_hub  # the fault test's client and hub process

    import test_hub_kill

    ws = workspace(root / "h")
    names = [f"a{i:02d}" for i in range(clients)]
    test_hub_kill.AGENTS[:] = names
    roster(ws, names)
    store = await Store.open(ws.db_path)
    await sync_roster(store, load_roster(ws))
    for n in names:
        await store.set_agent_state(n, "running")
    hubs = [await start_hub(ws)]
    agents = [Agent(n, ws.ipc_dir(n) / "mcp.sock") for n in names]
    stop = asyncio.Event()
    try:
        for a in agents:
            await a.open()
        workers = [asyncio.create_task(a.work(stop)) for a in agents]
        await asyncio.sleep(3)
        before = {a.name: a.answered for a in agents}
        unsure_before = sum(len(a.unsure) for a in agents)
        t0 = time.monotonic()
        hubs[0].send_signal(signal.SIGKILL)
        await hubs[0].wait()
        detect_at = None
        hubs.append(await start_hub(ws))
        while True:
            if detect_at is None and sum(len(a.unsure) for a in agents) > unsure_before:
                detect_at = time.monotonic()
            if all(a.answered > before[a.name] for a in agents):
                break
            if time.monotonic() - t0 > 120:
                raise SystemExit("bench/faults.py: calls did not resume after the hub restart")
            await asyncio.sleep(0.01)
        recover = time.monotonic() - t0
        stop.set()
        await asyncio.gather(*workers)
    finally:
        stop.set()
        for a in agents:
            await a.close()
        for p in hubs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
                await p.wait()
    stored = {r["body"] for r in await store.query("SELECT body FROM messages")}
    lost = sum(1 for a in agents for b in a.acked if b not in stored)
    await store.close()
    detect = (detect_at - t0) if detect_at else float("nan")
    return (f"hub kill -9 under {clients} MCP clients", detect, recover, lost)


async def engine_restart(root: Path, n: int) -> tuple:
    import docker
    from mcp import Client

    from crowdtui.hub.unix_transport import unix_client
    from crowdtui.runtime.image import image_tag
    from testengine import TestEngine

    engine = TestEngine(Path(tempfile.mkdtemp(prefix="cf", dir="/tmp")))
    try:
        engine.start()
        main = docker.from_env()
        engine.load_image(main, image_tag())
        main.close()
        ws = workspace(root / "e")
        names = [f"e{i:02d}" for i in range(n)]
        roster(ws, names)
        async with Host(ws, client=engine.client()) as h:
            for name in names:
                await h.runtime.start(h.roster.agents[name])
            await until(lambda: _all(h, names, "running"), 300, "all running")
            sent = []

            async def doors(tag):
                if any(name not in h.hub.doors for name in names):
                    return False
                for name in names:
                    door = h.hub.doors.get(name)  # a door may close and open again as states settle
                    if door is None:
                        return False
                    try:
                        async with Client(unix_client(door.path)) as c:
                            if (await c.call_tool("send_message", {"to": "operator", "body": f"{name} {tag}"})).is_error:
                                return False
                    except Exception:  # the door closed under the call (its agent restarting): try again
                        return False
                    sent.append(f"{name} {tag}")
                return True

            await until(lambda: doors("before"), 60, "doors")
            mark = await h.store.last_event_id()
            await asyncio.to_thread(engine.stop)
            gone = time.monotonic()
            await until(lambda: h.store.events_after(mark, kinds=["engine.unreachable"]), 10, "unreachable")
            detect = time.monotonic() - gone
            await h.store.send_message("operator", names[0], "while away")
            sent_away = "while away"
            await asyncio.to_thread(engine.start)
            back = time.monotonic()
            await until(lambda: _all(h, names, "running"), 300, "all back", every=0.05)
            await until(lambda: doors("after"), 120, "doors again", every=0.05)
            recover = time.monotonic() - back
            stored = {m.body for m in await h.store.inbox("operator", limit=10_000)}
            stored |= {m.body for m in await h.store.inbox(names[0], limit=10_000)}
            lost = len({b for b in [*sent, sent_away] if b not in stored})  # retried sends count once
            twice = len(h.runtime.client.containers.list(filters={"status": "running"})) - n
            lost += max(0, twice)
    finally:
        engine.destroy()
    return (f"engine restart, {n} agents (dockerd gone → answering again)", detect, recover, lost)


async def stuck(root: Path) -> tuple:
    ws = workspace(root / "s")
    roster(ws, ["frozen"])
    async with Host(ws) as h:
        h.hub.supervisor.stuck_every = 0.1
        await h.runtime.start(h.roster.agents["frozen"])
        await until(lambda: _all(h, ["frozen"], "running"), what="running")
        await asyncio.sleep(0.5)
        c = await h.runtime.container("frozen")
        t0 = time.monotonic()
        c.pause()
        await until(lambda: h.store.events_after(0, kinds=["agent.stuck"]), what="stuck")
        detect = time.monotonic() - t0
        t1 = time.monotonic()
        c.unpause()
        await until(lambda: h.store.events_after(0, kinds=["agent.unstuck"]), what="unstuck")
        return ("stuck agent (docker pause → unpause)", detect, time.monotonic() - t1, 0)


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--clients", type=int, default=20)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="crowd-faults-"))
    rows = []
    try:
        rows += await lease_and_restart(root)
        rows.append(await hub_kill(root, args.clients))
        rows.append(await stuck(root))
        rows.append(await engine_restart(root, args.agents))
    finally:
        from crowdtui.runtime.disk import unmount_below

        unmount_below(root)  # the agents' home filesystems (loop mounts) go with the workspaces
        shutil.rmtree(root, ignore_errors=True)
    print(f"{'fault':<62} {'detect':>8} {'recover':>8} {'lost':>5}")
    for name, detect, recover, lost in rows:
        print(f"{name:<62} {detect:>7.2f}s {recover:>7.2f}s {lost:>5}")
    return 1 if any(r[3] for r in rows) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main()))
