"""Helpers for the runtime tests."""

from __future__ import annotations

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


def exec_in(container, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["bash", "-c", script], user="1000:1000")
    return code, out.decode(errors="replace")


