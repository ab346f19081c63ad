"""Helpers for the runtime tests."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from crowdtui.roster import AgentDef


def make_agent(ws, name: str, command=("sleep", "infinity"), **fields) -> AgentDef:
    return AgentDef(
        name=name,
        file=Path(ws.agents_dir) / name / "AGENT.md",
        rel_path=name,
        tier=0,
        command=tuple(command) if command is not None else None,
        **fields,
    )


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll an (async or plain) predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


def exec_in(container, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["bash", "-c", script], user="1000:1000")
    return code, out.decode(errors="replace")


