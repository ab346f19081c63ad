"""The operator's store commands through the real ``crowdtui`` entry point.

Most tests call ``crowdtui.cli.main`` in-process (capsys); a few run the installed
``crowdtui`` script as a subprocess. Workspaces are made with ``crowdtui init`` (the
sample roster: lead, researcher, qa, echo).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crowdtui.cli import main

CROWDTUI = Path(sys.executable).parent / "crowdtui"
DOC_KEYS = {"id", "doc_type", "title", "state", "version", "latest_version", "author", "created_at",
            "updated_at", "holder", "taken_at", "lease_expires_at", "executable"}


def dump(db: Path, *, without_refusals: bool = False) -> dict:
    """Every table; ``without_refusals`` leaves out the doc.refused events (and the event
    id counter) that a refused document command records."""
    con = sqlite3.connect(str(db))
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        out = {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
        if without_refusals:
            out["events"] = con.execute("SELECT * FROM events WHERE kind != 'doc.refused' ORDER BY rowid").fetchall()
            out.pop("sqlite_sequence", None)
        return out
    finally:
        con.close()


def refusals(db: Path) -> list[tuple]:
    con = sqlite3.connect(str(db))
    try:
        return con.execute("SELECT actor, subject, json_extract(detail, '$.rule') FROM events"
                           " WHERE kind = 'doc.refused' ORDER BY id").fetchall()
    finally:
        con.close()


@pytest.fixture
def ws(tmp_path, capsys) -> Path:
    root = tmp_path / "ws"
    assert main(["init", str(root)]) == 0
    capsys.readouterr()
    return root


@pytest.fixture
def cli(ws, capsys):
    """Run one command in the workspace: returns (exit code, stdout, stderr)."""

    def run(*argv: str, actor: str | None = None):
        pre = ["-w", str(ws)] + (["--as", actor] if actor else [])
        code = main(pre + list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def db(ws) -> Path:
    return ws / ".crowd" / "crowd.db"


def ok(result) -> str:
    code, out, err = result
    assert code == 0, err
    assert err == ""
    return out


def fails(result, *needles: str) -> str:
    code, out, err = result
    assert code != 0
    assert err.startswith("crowdtui: ") and err.count("\n") == 1, err  # one line
    for n in needles:
        assert n in err, err
    return err


# ---- messages --------------------------------------------------------------------------


def test_send_inbox_read_roundtrip(cli):
    assert "sent message 1 to qa" in ok(cli("send", "qa", "please look at SOP-001", "--priority", "high"))
    ok(cli("send", "qa", "low one", "--priority", "low", "--thread", "misc"))
    inbox = json.loads(ok(cli("inbox", "qa", "--json")))
    assert [(m["body"], m["priority"], m["sender"], m["recipient"], m["read_at"]) for m in inbox] == [
        ("please look at SOP-001", "high", "operator", "qa", None),
        ("low one", "low", "operator", "qa", None),
    ]
    assert set(inbox[0]) == {"id", "sender", "recipient", "body", "priority", "thread", "created_at", "read_at"}
    assert inbox[1]["thread"] == "misc"
    # qa reads its first message (the operator acting for qa)
    assert "marked 1 read" in ok(cli("read", str(inbox[0]["id"]), actor="qa"))
    unread = json.loads(ok(cli("inbox", "qa", "--unread", "--json")))
    assert [m["body"] for m in unread] == ["low one"]
    text = ok(cli("inbox", "qa"))
    assert "please look at SOP-001" in text and "from operator" in text


def test_operator_can_send_to_every_agent_of_the_roster_and_broadcast(cli):
    for name in ("lead", "researcher", "qa", "echo"):
        ok(cli("send", name, f"hi {name}"))
    out = json.loads(ok(cli("send", "*", "all hands", "--json")))
    assert sorted(m["recipient"] for m in out) == ["echo", "lead", "qa", "researcher"]


def test_acting_as_an_agent_is_recorded(cli):
    ok(cli("send", "operator", "done with the review", actor="lead"))
    [msg] = json.loads(ok(cli("inbox", "--json")))
    assert (msg["sender"], msg["recipient"]) == ("lead", "operator")
    events = [json.loads(line) for line in ok(cli("events", "--json", "--kind", "message.sent")).splitlines()]
    assert events[-1]["actor"] == "lead" and events[-1]["detail"]["by_operator"] is True


def test_escape_sequences_in_messages_are_shown_inert(cli):
    ok(cli("send", "operator", "hi \x1b]0;owned\x07 \x1b[2J there", actor="qa"))
    out = ok(cli("inbox"))
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07 \\x1b[2J there" in out
    raw = json.loads(ok(cli("inbox", "--json")))
    assert raw[0]["body"] == "hi \x1b]0;owned\x07 \x1b[2J there"  # JSON keeps the real text


@pytest.mark.parametrize(
    "argv, actor, needles",
    [
        (("send", "ghost", "hi"), None, ("no agent named 'ghost'",)),
        (("send", "../qa", "hi"), None, ("invalid name '../qa'",)),
        (("send", "qa/x", "hi"), None, ("invalid name",)),
        (("send", "qa\x1b[31m", "hi"), None, ("invalid name 'qa\\x1b[31m'",)),
        (("send", "qa", "x" * (64 * 1024 + 1)), None, ("65537 bytes", "limit is 65536")),
        (("send", "qa", "hi", "--thread", "t\x1b[1m"), None, ("control characters",)),
        (("send", "qa", "hi"), "ghost", ("--as ghost",)),
        (("send", "qa", "hi"), "Bad Name", ("invalid name",)),
        (("inbox", "ghost"), None, ("ghost",)),
    ],
)
def test_bad_message_input_is_one_line_and_changes_nothing(cli, db, argv, actor, needles):
    cli("doc", "ls")  # roster synced before the snapshot
    before = dump(db)
    err = fails(cli(*argv, actor=actor), *needles)
    assert "\x1b" not in err
    assert dump(db) == before


# ---- documents -------------------------------------------------------------------------


def test_sop_lifecycle_through_the_cli(cli, ws, tmp_path):
    draft = tmp_path / "draft.md"
    draft.write_text("# Returns\nstep 1\n")
    created = json.loads(ok(cli("doc", "new", "SOP", "Handling returns", "--file", str(draft), "--json")))
    assert (created["id"], created["state"], created["version"], created["content"]) == (
        "SOP-001", "DRAFT", 1, "# Returns\nstep 1\n"
    )
    assert set(created) == DOC_KEYS | {"content"}  # the documented, stable shape
    ok(cli("doc", "checkout", "SOP-001"))
    draft.write_text("# Returns\nstep 1\nstep 2\n")
    assert "version 2" in ok(cli("doc", "checkin", "SOP-001", "--file", str(draft), "-m", "add step 2"))
    assert "now IN_REVIEW" in ok(cli("doc", "route", "SOP-001", "review", "--to", "qa,lead"))
    tasks = json.loads(ok(cli("doc", "tasks", "qa", "--json")))
    assert [(t["doc_id"], t["kind"], t["doc_state"]) for t in tasks] == [("SOP-001", "review", "IN_REVIEW")]
    assert set(tasks[0]) == {"id", "doc_id", "kind", "assignee", "created_at", "doc_title", "doc_state",
                             "routed_by", "round"}
    ok(cli("doc", "review", "SOP-001", "recommend", "-m", "clear", actor="qa"))
    assert "now REVIEWED" in ok(cli("doc", "review", "SOP-001", "recommend", "-m", "fine", actor="lead"))
    # the operator checked in version 2, so someone else approves it (separation of duties)
    ok(cli("doc", "route", "SOP-001", "approval", "--to", "echo"))
    assert "now EFFECTIVE" in ok(cli("doc", "approve", "SOP-001", "-m", "go", actor="echo"))
    assert "now RETIRED" in ok(cli("doc", "retire", "SOP-001"))
    shown = json.loads(ok(cli("doc", "show", "SOP-001", "--version", "1", "--json")))
    assert (shown["version"], shown["latest_version"], shown["content"]) == (1, 2, "# Returns\nstep 1\n")
    assert "step 2" in ok(cli("doc", "show", "SOP-001"))
    listed = json.loads(ok(cli("doc", "ls", "--json")))
    assert [(d["id"], d["state"], d["version"]) for d in listed] == [("SOP-001", "RETIRED", 2)]
    assert set(listed[0]) == DOC_KEYS
    history = json.loads(ok(cli("doc", "history", "SOP-001", "--json")))
    assert [(e["kind"], e["actor"]) for e in history if e["kind"] != "doc.state"] == [
        ("doc.created", "operator"), ("doc.checkout", "operator"), ("doc.checkin", "operator"),
        ("doc.routed", "operator"), ("doc.reviewed", "qa"), ("doc.reviewed", "lead"),
        ("doc.routed", "operator"), ("doc.approved", "echo"),
    ]
    assert "doc.reviewed" in ok(cli("doc", "history", "SOP-001"))


def test_cr_lifecycle_with_rejection_and_request_updates(cli, tmp_path):
    f = tmp_path / "cr.md"
    f.write_text("plan")
    ok(cli("doc", "new", "CR", "Upgrade", "--file", str(f)))
    ok(cli("doc", "route", "CR-001", "review", "--to", "qa"))
    assert "now DRAFT" in ok(cli("doc", "review", "CR-001", "request-updates", "-m", "add rollback", actor="qa"))
    ok(cli("doc", "checkout", "CR-001"))
    f.write_text("plan + rollback")
    ok(cli("doc", "checkin", "CR-001", "--file", str(f)))
    ok(cli("doc", "route", "CR-001", "review", "--to", "qa"))
    ok(cli("doc", "review", "CR-001", "recommend", "-m", "ok", actor="qa"))
    ok(cli("doc", "route", "CR-001", "approval", "--to", "lead"))
    assert "back to IN_REVIEW" in ok(cli("doc", "reject", "CR-001", "-m", "needs an owner", actor="lead"))
    ok(cli("doc", "review", "CR-001", "recommend", "-m", "ok", actor="qa"))
    ok(cli("doc", "route", "CR-001", "approval", "--to", "lead"))
    assert "now PRE_APPROVED" in ok(cli("doc", "approve", "CR-001", actor="lead"))
    assert "now IN_EXECUTION" in ok(cli("doc", "release", "CR-001"))
    assert "now POST_REVIEW" in ok(cli("doc", "route", "CR-001", "review", "--to", "qa"))
    ok(cli("doc", "review", "CR-001", "recommend", "-m", "done", actor="qa"))
    # the operator checked in version 2: someone else approves it (separation of duties)
    ok(cli("doc", "route", "CR-001", "approval", "--to", "lead"))
    assert "now POST_APPROVED" in ok(cli("doc", "approve", "CR-001", actor="lead"))
    assert "now CLOSED" in ok(cli("doc", "close", "CR-001"))


def test_separation_of_duties_through_the_cli(cli, ws, db, tmp_path):
    """The CLI gets the store's rules, and crowd.toml's [documents] policy."""
    f = tmp_path / "sop.md"
    f.write_text("only the operator grants access")
    ok(cli("doc", "new", "SOP", "Access"))
    ok(cli("doc", "checkout", "SOP-001", actor="qa"))
    f.write_text("everyone grants access")
    ok(cli("doc", "checkin", "SOP-001", "--file", str(f), actor="qa"))
    fails(cli("doc", "route", "SOP-001", "review", "--to", "qa", actor="qa"),
          "only the operator can route SOP-001, not qa; ask operator to route it")
    fails(cli("doc", "route", "SOP-001", "review", "--to", "qa"),
          "qa checked in version 2 of SOP-001 and may not review it; route it to someone else")
    ok(cli("doc", "route", "SOP-001", "review", "--to", "lead"))
    ok(cli("doc", "review", "SOP-001", "recommend", "-m", "ok", actor="lead"))
    fails(cli("doc", "route", "SOP-001", "approval", "--to", "echo"), "needs the operator's approval",
          "add operator to the approvers")
    assert [r[2] for r in refusals(db)] == ["only-owner-routes", "author-may-not-review", "operator-approval"]
    config = ws / "crowd.toml"
    text = config.read_text()
    config.write_text(text + "\n[documents.SOP]\noperator_approval = flase\n")
    fails(cli("doc", "ls"), "crowd.toml")  # a broken policy is reported, not ignored
    config.write_text(text + "\n[documents.SOP]\noperator_aproval = false\n")
    fails(cli("doc", "ls"), "unknown key documents.SOP.operator_aproval in crowd.toml")
    config.write_text(text + "\n[documents.SOP]\noperator_approval = false\n")
    assert "now IN_APPROVAL" in ok(cli("doc", "route", "SOP-001", "approval", "--to", "echo"))
    assert "now EFFECTIVE" in ok(cli("doc", "approve", "SOP-001", actor="echo"))


def test_checkout_conflict_cancel_and_break_lock(cli, tmp_path):
    f = tmp_path / "x.md"
    f.write_text("new")
    ok(cli("doc", "new", "SPEC", "Wire format"))
    ok(cli("doc", "checkout", "SPEC-001", actor="qa"))
    fails(cli("doc", "checkout", "SPEC-001"), "SPEC-001 is held by qa until", "operator can break the lock")
    fails(cli("doc", "checkin", "SPEC-001", "--file", str(f)), "checked out by qa, not operator")
    fails(cli("doc", "break-lock", "SPEC-001", actor="lead"), "only the operator can break a lock")
    assert "lock broken" in ok(cli("doc", "break-lock", "SPEC-001"))
    ok(cli("doc", "checkout", "SPEC-001", actor="lead"))
    assert "checkout cancelled" in ok(cli("doc", "cancel", "SPEC-001", actor="lead"))
    assert json.loads(ok(cli("doc", "show", "SPEC-001", "--json")))["holder"] is None


@pytest.mark.parametrize(
    "argv, actor, needles",
    [
        (("doc", "show", "SOP-404"), None, ("no document SOP-404",)),
        (("doc", "show", "SOP-001", "--version", "9"), None, ("has no version 9",)),
        (("doc", "show", "../../etc/passwd"), None, ("invalid document id",)),
        (("doc", "new", "MEMO", "x"), None, ("unknown document type MEMO", "SOP")),
        (("doc", "new", "SOP", "bad\x1b[2Jtitle"), None, ("control characters",)),
        (("doc", "new", "SOP", "x", "--file", "/nonexistent/file"), None, ("cannot read",)),
        (("doc", "checkin", "SOP-001", "--file", "{draft}"), "qa", ("not checked out",)),
        (("doc", "route", "SOP-001", "approval", "--to", "qa"), None, ("it is DRAFT", "allowed from DRAFT")),
        (("doc", "route", "SOP-001", "review", "--to", "qa,ghost"), None, ("ghost",)),
        (("doc", "route", "SOP-001", "review", "--to", ","), None, ("at least one name",)),
        (("doc", "review", "SOP-001", "recommend", "-m", "x"), "qa", ("it is DRAFT",)),
        (("doc", "approve", "SOP-001"), None, ("cannot approve SOP-001: it is DRAFT",)),
        (("doc", "release", "SOP-001"), None, ("cannot release",)),
        (("doc", "close", "SOP-001"), None, ("cannot close",)),
        (("doc", "retire", "SOP-001"), None, ("cannot retire",)),
        (("doc", "break-lock", "SOP-001"), None, ("not checked out",)),
        (("doc", "history", "CR-009"), None, ("no document CR-009",)),
    ],
)
def test_bad_document_commands_are_one_line_and_change_nothing(cli, db, tmp_path, argv, actor, needles):
    draft = tmp_path / "d.md"
    draft.write_text("text")
    ok(cli("doc", "new", "SOP", "Existing"))
    before = dump(db, without_refusals=True)
    argv = tuple(a.replace("{draft}", str(draft)) for a in argv)
    fails(cli(*argv, actor=actor), *needles)
    assert dump(db, without_refusals=True) == before
    # a permission refusal (here: checking in what qa does not hold) is recorded; others are not
    assert refusals(db) == ([("qa", "SOP-001", "holder-only")] if argv[1] == "checkin" else [])


def test_oversized_checkin_is_refused(cli, db, tmp_path):
    big = tmp_path / "big.md"
    big.write_text("x" * (1024 * 1024 + 1))
    ok(cli("doc", "new", "SOP", "Existing"))
    ok(cli("doc", "checkout", "SOP-001"))
    before = dump(db)
    fails(cli("doc", "checkin", "SOP-001", "--file", str(big)), "limit is 1048576 bytes")
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\xff\xfe\x00")
    fails(cli("doc", "checkin", "SOP-001", "--file", str(binary)), "not UTF-8")
    assert dump(db) == before


def test_titles_with_escapes_are_shown_inert(cli, db):
    con = sqlite3.connect(str(db))  # a title written by some other client, unchecked
    ok(cli("doc", "new", "SOP", "plain"))
    con.execute("UPDATE documents SET title = ? WHERE id = 'SOP-001'", ("evil\x1b[2J\x9b1m",))
    con.commit()
    con.close()
    for argv in (("doc", "ls"), ("doc", "show", "SOP-001")):
        out = ok(cli(*argv))
        assert "\x1b" not in out and "\x9b" not in out and "evil\\x1b[2J\\x9b1m" in out


# ---- events ----------------------------------------------------------------------------


def test_events_after_and_kind_filters(cli):
    ok(cli("send", "qa", "one"))
    ok(cli("doc", "new", "TP", "Protocol"))
    lines = ok(cli("events", "--json", "--after", "0")).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert set(events[0]) == {"id", "at", "actor", "kind", "subject", "detail"}
    kinds = [e["kind"] for e in events]
    assert "message.sent" in kinds and "doc.created" in kinds
    last_but_one = events[-2]["id"]
    after = [json.loads(x) for x in ok(cli("events", "--json", "--after", str(last_but_one))).splitlines()]
    assert [e["id"] for e in after] == [events[-1]["id"]]
    docs = [json.loads(x) for x in ok(cli("events", "--json", "--kind", "doc.*")).splitlines()]
    assert [e["kind"] for e in docs] == ["doc.created"]
    assert len(ok(cli("events", "-n", "2")).splitlines()) == 2


# ---- the installed script as a subprocess ----------------------------------------------


def run_script(ws: Path, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(CROWDTUI), "-w", str(ws), *argv], capture_output=True, text=True, timeout=60, **kw)


def test_installed_script_success_error_and_json(ws):
    r = run_script(ws, "send", "lead", "-", input="from stdin\n")
    assert r.returncode == 0 and "sent message" in r.stdout, r.stderr
    r = run_script(ws, "inbox", "lead", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["body"] == "from stdin\n"
    r = run_script(ws, "doc", "show", "SOP-001")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "crowdtui: no document SOP-001; check the id (`crowdtui doc ls` lists them)\n"
    env = dict(os.environ, CROWD_WORKSPACE=str(ws))
    r = subprocess.run([str(CROWDTUI), "doc", "ls", "--json"], capture_output=True, text=True, env=env,
                       cwd="/", timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def test_events_follow_prints_new_events_as_they_happen(ws):
    last = json.loads(run_script(ws, "events", "--json", "-n", "1").stdout.splitlines()[-1])["id"]
    proc = subprocess.Popen(
        [str(CROWDTUI), "-w", str(ws), "events", "-f", "--json", "--kind", "message.sent", "--after", str(last)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        def next_event() -> dict:
            line = proc.stdout.readline()  # bounded by the send below; the test timeout guards a hang
            assert line, proc.stderr.read()
            return json.loads(line)

        assert run_script(ws, "send", "qa", "first").returncode == 0
        first = next_event()
        # the follower has made its first query by now: this one can only come by polling
        assert run_script(ws, "send", "echo", "second").returncode == 0
        second = next_event()
        assert [(e["subject"], e["detail"]["preview"]) for e in (first, second)] == [
            ("qa", "first"), ("echo", "second")
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 130


def test_operator_reassigns_an_open_task(cli):
    ok(cli("doc", "new", "SOP", "Stuck"))
    ok(cli("doc", "route", "SOP-001", "review", "--to", "echo"))
    [task] = json.loads(ok(cli("doc", "tasks", "echo", "--json")))
    fails(cli("doc", "reassign", str(task["id"]), "--to", "qa", actor="lead"), "only the operator")
    out = ok(cli("doc", "reassign", str(task["id"]), "--to", "qa"))
    assert f"task {task['id']} reassigned" in out and "for qa" in out
    assert json.loads(ok(cli("doc", "tasks", "echo", "--json"))) == []
    assert "now REVIEWED" in ok(cli("doc", "review", "SOP-001", "recommend", "-m", "ok", actor="qa"))
