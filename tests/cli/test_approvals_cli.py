"""``crowdtui approvals`` on a real workspace (the sample roster: lead > researcher, qa,
echo): requests opened by agents are listed, shown, answered once, remembered "always"
and revoked; ``--as`` answers only with that agent's authority; text output is inert."""

from __future__ import annotations

import asyncio
import json
import time

from crowdtui.cli import main
from qms import permissions


def run(ws, capsys, *argv, expect=0, json_out=True):
    code = main(list(argv) + (["--json"] if json_out else []) + ["-w", str(ws.root)])
    out, err = capsys.readouterr()
    assert code == expect, (argv, code, out, err)
    return json.loads(out) if json_out else out


def open_request(ws, agent, tool, title, diff=None, timeout=600):
    """A request as an agent's waiting turn leaves it in the store."""
    async def go():
        from crowdtui.roster import load_roster, sync_roster

        store = await ws.open_store()
        try:
            await sync_roster(store, load_roster(ws))
            req, _ = await permissions.open_request(store, agent=agent, tool=tool, title=title, diff=diff,
                                                    now=time.time(), timeout=timeout)
            return req.id
        finally:
            await store.close()
    return asyncio.run(go())


def test_the_operator_lists_shows_answers_and_revokes(sample_workspace, capsys):
    ws = sample_workspace
    assert run(ws, capsys, "approvals", "ls") == []
    assert "no permission request waits" in run(ws, capsys, "approvals", "ls", json_out=False)
    first = open_request(ws, "researcher", "edit", "Write \x1b[2Jnotes.md", diff="+\x1b]0;pwned\x07line\n")
    second = open_request(ws, "qa", "execute", "make test")
    listed = run(ws, capsys, "approvals", "ls")
    assert [(r["id"], r["agent"], r["tool"], r["state"]) for r in listed] == \
        [(first, "researcher", "edit", "pending"), (second, "qa", "execute", "pending")]
    assert [r["agent"] for r in run(ws, capsys, "approvals", "ls", "--agent", "qa")] == ["qa"]
    text = run(ws, capsys, "approvals", "ls", json_out=False)
    assert "\x1b" not in text and "[diff]" in text and "expires in" in text
    shown = run(ws, capsys, "approvals", "show", str(first), json_out=False)
    assert "\x1b" not in shown and "\x07" not in shown and "line" in shown

    done = run(ws, capsys, "approvals", "allow", str(first), "--always")
    assert (done["state"], done["outcome"], done["answered_by"]) == ("answered", "allow_always", "operator")
    again = run(ws, capsys, "approvals", "reject", str(first), expect=1)
    assert "answered already" in again["error"] and again["exit"] == 1
    assert run(ws, capsys, "approvals", "reject", "nope", expect=1)["error"].startswith("request id 'nope'")
    assert run(ws, capsys, "approvals", "reject", str(second))["outcome"] == "reject_once"
    assert [(r["agent"], r["tool"], r["outcome"]) for r in run(ws, capsys, "approvals", "rules")] == \
        [("researcher", "edit", "allow_always")]
    # the next identical request never waits
    third = open_request(ws, "researcher", "edit", "Write more.md")
    assert run(ws, capsys, "approvals", "show", str(third))["answered_by"] == "rule"
    assert [r["id"] for r in run(ws, capsys, "approvals", "ls", "--all")] == [first, second, third]
    assert run(ws, capsys, "approvals", "revoke", "researcher", "edit")["outcome"] == "allow_always"
    assert "has no \"always\" rule" in run(ws, capsys, "approvals", "revoke", "researcher", "edit", expect=1)["error"]
    assert run(ws, capsys, "approvals", "rules") == []


def test_as_an_agent_only_its_descendants_requests_are_answered(sample_workspace, capsys):
    ws = sample_workspace
    req = open_request(ws, "researcher", "edit", "Write notes.md")
    refused = run(ws, capsys, "approvals", "allow", str(req), "--as", "qa", expect=1)
    assert "not below qa" in refused["error"]
    own = run(ws, capsys, "approvals", "allow", str(req), "--as", "researcher", expect=1)
    assert "not below researcher" in own["error"]
    assert run(ws, capsys, "approvals", "ls")[0]["state"] == "pending"
    done = run(ws, capsys, "approvals", "allow", str(req), "--as", "lead")
    assert (done["outcome"], done["answered_by"]) == ("allow_once", "lead")


def test_an_overdue_request_is_expired_when_the_queue_is_read(sample_workspace, capsys):
    ws = sample_workspace
    req = open_request(ws, "echo", "edit", "late", timeout=0.01)
    time.sleep(0.05)
    assert run(ws, capsys, "approvals", "ls") == []
    assert run(ws, capsys, "approvals", "show", str(req))["outcome"] == "expired"
    assert "is expired already" in run(ws, capsys, "approvals", "allow", str(req), expect=1)["error"]
