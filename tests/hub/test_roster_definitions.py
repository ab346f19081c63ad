"""The hub's view of the roster (``roster_definitions``): refreshed in a thread, parsed
again only when ``agents/`` changed on disk, and a file turned bad keeps its agent's last
good definition."""

from __future__ import annotations

import time

import crowdtui.roster.loader as loader
from crowdtui.hub.directory import roster_definitions
from crowdtui.roster.loader import roster_fingerprint


def agent_md(ws, name: str, description: str) -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(f"---\nname: {name}\ndescription: {description}\n---\n# {name}\n")


def settle(lookup, name: str, want, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = lookup(name)
        got = d.description if d is not None else None
        if got == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name}'s description never became {want!r} (last {got!r})")


def test_the_fingerprint_follows_every_file_the_roster_reads(workspace):
    agent_md(workspace, "alpha", "first")
    before = roster_fingerprint(workspace)
    assert roster_fingerprint(workspace) == before
    agent_md(workspace, "alpha", "FIRST")  # same size, new content
    edited = roster_fingerprint(workspace)
    assert edited != before
    skill = workspace.agents_dir / "alpha" / "skills" / "cite" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("cite")
    with_skill = roster_fingerprint(workspace)
    assert with_skill != edited
    (workspace.agents_dir / ".templates").mkdir()  # hidden: not read by the roster
    (workspace.agents_dir / ".templates" / "x.md").write_text("x")
    assert roster_fingerprint(workspace) == with_skill


def test_an_unchanged_roster_is_not_parsed_again(workspace, monkeypatch):
    agent_md(workspace, "alpha", "first")
    parses = []
    real = loader.load_roster
    monkeypatch.setattr(loader, "load_roster", lambda ws, previous=None: parses.append(1) or real(ws, previous))
    lookup = roster_definitions(workspace, max_age=0.0)
    assert lookup("alpha").description == "first"
    for _ in range(20):  # each stale lookup starts a refresh; none of them parses
        lookup("alpha")
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(parses) == 1
    agent_md(workspace, "alpha", "second")
    settle(lookup, "alpha", "second")
    assert len(parses) == 2


def test_a_file_turned_bad_keeps_the_last_good_definition(workspace):
    agent_md(workspace, "alpha", "good")
    lookup = roster_definitions(workspace, max_age=0.0)
    assert lookup("alpha").description == "good"
    (workspace.agents_dir / "alpha" / "AGENT.md").write_text("---\nname: alpha\ndescription: [unclosed\n---\n")
    agent_md(workspace, "beta", "new")  # a later change is still picked up
    settle(lookup, "beta", "new")
    assert lookup("alpha").description == "good"
