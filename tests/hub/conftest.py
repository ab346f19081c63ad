"""Fixtures for the hub: a real store file, a small crew registered in it, a started hub.

The crew (tier = depth in the tree):

    lead (0) ── worker (1) ── deep (2)
    reviewer (0)
    narrow (1, child of lead, grants: only messaging)
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from crowdtui.roster import AgentDef

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "docker" / "bin" / "crowd-mcp-bridge"
AGENT = REPO / "docker" / "bin" / "crowd-agent"

CREW = [
    # name, rel_path, tier, parent, grants
    ("lead", "lead", 0, None, ()),
    ("worker", "lead/worker", 1, "lead", ()),
    ("deep", "lead/worker/deep", 2, "worker", ()),
    ("reviewer", "reviewer", 0, None, ()),
    ("narrow", "lead/narrow", 1, "lead", ("send_message(to=lead)", "get_messages", "mark_messages_read")),
]


def crew_definitions(workspace) -> dict[str, AgentDef]:
    defs = {}
    for name, rel, tier, parent, grants in CREW:
        children = tuple(n for n, _, _, p, _ in CREW if p == name)
        defs[name] = AgentDef(
            name=name, file=workspace.agents_dir / rel / "AGENT.md", rel_path=rel, tier=tier,
            parent=parent, children=children, description=f"the {name}", grants=grants,
        )
    return defs


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    for name, rel, tier, parent, _ in CREW:
        await s.upsert_agent(name, path=rel, tier=tier, parent=parent, description=f"the {name}")
    yield s
    await s.close()


@pytest.fixture
def definitions(workspace):
    return crew_definitions(workspace)


@pytest.fixture
async def hub(workspace, store, definitions):
    from crowdtui.hub.hub import Hub

    h = Hub(workspace, store, definitions=definitions.get)
    await h.start()
    yield h
    await h.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def structured(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def agent_def(ws, name, rel, tier, parent=None, children=(), command=None, env=None):
    return AgentDef(
        name=name, file=ws.agents_dir / rel / "AGENT.md", rel_path=rel, tier=tier, parent=parent,
        children=tuple(children), description=f"the {name}", command=tuple(command) if command else None,
        env=dict(env or {}),
    )


CREW_FILES = {
    "lead": "name: lead\ndescription: leads\ncommand: [crowd-agent, --role, interactive]\n",
    "lead/worker": "name: worker\ndescription: drafts documents\ncommand: [crowd-agent, --role, worker, --poll, '0.3']\n"
                   "env:\n  CROWD_REVIEWER: reviewer\n",
    "reviewer": "name: reviewer\ndescription: reviews\ncommand: [crowd-agent, --role, reviewer, --poll, '0.3']\n",
    "echo": "name: echo\ndescription: echoes\ncommand: [crowd-agent, --role, echo, --poll, '0.3']\n",
}


def write_roster(workspace, files=CREW_FILES):
    for rel, front in files.items():
        folder = workspace.agents_dir / rel
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "AGENT.md").write_text(f"---\n{front}---\nA test agent.\n")
