"""Container start to "prompt ready": a Claude Code agent beside the scripted agent, same run.

    .venv/bin/python bench/runner_start.py [--rounds 5]

Each round starts each agent through crowdtui (hub door, ``Runtime.start``: secrets handed
over for Claude Code, its home seeded), attaches like the console (a viewer and a resize)
and stops the clock when its terminal shows it is ready: the scripted agent's
"connected to the crowd hub", Claude Code's prompt footer ("shift+tab" / "for shortcuts").
Then the container is removed. Needs the Docker engine, the agent image and the
claude-code image (``crowdtui image build --runner claude-code``). The key is fake: no
model request is made before the prompt is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78c])")
AGENTS = {
    "scripted": ("---\nname: scripted\n---\nThe scripted agent.\n", ("connected to the crowd hub",)),
    "claude": ("---\nname: claude\nrunner: claude-code\nmodel: claude-opus-4-1\ntools: [mcp__crowd]\n"
               "resources: {memory: 1g, pids: 512}\n---\nA Claude Code agent.\n", ("shift+tab", "for shortcuts")),
}


async def start_until_ready(hub, runtime, pool, agent, markers, timeout=90.0) -> float:
    buf = bytearray()
    started = time.perf_counter()
    await hub.open_door(agent.name)
    info = await runtime.start(agent)
    session = await pool.get(info.container_id)
    session.add_viewer(buf.extend, replay=True)
    await session.resize_now(40, 120)
    while time.perf_counter() - started < timeout:
        text = ANSI.sub(b"", bytes(buf)).decode("utf-8", "replace")
        if any(m in text for m in markers):
            elapsed = time.perf_counter() - started
            await pool.discard(info.container_id)
            await runtime.remove(agent.name)
            return elapsed
        await asyncio.sleep(0.02)
    raise SystemExit(f"{agent.name} showed no prompt within {timeout:.0f} s")


async def main(rounds: int) -> None:
    from qms import Store

    from crowdtui.hub.hub import Hub
    from crowdtui.roster import load_roster, sync_roster
    from crowdtui.runtime.containers import Runtime
    from crowdtui.runtime.disk import release_all
    from crowdtui.runtime.pty import SessionPool
    from crowdtui.secrets import Vault
    from crowdtui.workspace import init_workspace

    import docker

    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = init_workspace(Path(tmp) / "ws", sample=False)
        for name, (text, _) in AGENTS.items():
            (ws.agents_dir / name).mkdir(parents=True)
            (ws.agents_dir / name / "AGENT.md").write_text(text)
        roster = load_roster(ws)
        store = await Store.open(ws.db_path)
        await sync_roster(store, roster)
        await Vault.open(ws, store).set("ANTHROPIC_API_KEY", "sk-ant-bench-not-a-key")
        hub = Hub(ws, store)
        await hub.start()
        runtime, pool = Runtime(ws, client, store=store), SessionPool(client)
        times: dict[str, list[float]] = {n: [] for n in AGENTS}
        try:
            for _ in range(rounds):
                for name, (_, markers) in AGENTS.items():
                    times[name].append(await start_until_ready(hub, runtime, pool, roster.get(name), markers))
        finally:
            await pool.close()
            for name in AGENTS:
                await runtime.remove(name)
            await hub.stop()
            await store.close()
            release_all(ws)
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"container start -> prompt ready, median of {rounds}:")
    for name, values in times.items():
        print(f"  {name:<9} {med[name] * 1000:7.0f} ms   (runs: {', '.join(f'{v * 1000:.0f}' for v in values)})")
    print(f"  Claude Code / scripted agent: {med['claude'] / med['scripted']:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
