"""Every command speaks JSON: the argparse tree is walked, each command runs with ``--json``
on a real workspace (real store, real engine for the container commands), and what it
prints is checked against the shape docs/cli-json.md documents for it.

New commands are covered without touching this file: a command with no scenario step
below still runs (``crowdtui CMD --json``, no arguments, in a subprocess with stdin
closed) and must answer one JSON document (its result, or an error object with a non-zero
exit); and every command must have a section in docs/cli-json.md.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crowdtui.cli import build_parser, main, subparsers_of, walk_commands

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cli-json.md"
CROWDTUI = [sys.executable, "-m", "crowdtui"]
ERROR_KEYS = {"error", "exit"}


# --------------------------------------------------------------------------- the documented shapes


def documented() -> tuple[dict[str, set[str]], dict[str, tuple[str, str | None]]]:
    """(shapes: name -> keys, commands: "doc checkin" -> (form, shape)) from docs/cli-json.md.

    A shape is ``### name`` with a ``Keys:`` line of backticked keys; a command is
    ``### `path``` whose first line starts with ``object NAME``, ``list of NAME``,
    ``lines of NAME`` or ``interactive``."""
    shapes: dict[str, set[str]] = {}
    commands: dict[str, tuple[str, str | None]] = {}
    heading = None
    for line in DOC.read_text().splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
            continue
        if heading is None or not line.strip():
            continue
        if heading.startswith("`"):
            m = re.match(r"(object|list of|lines of) `?(\w+)`?|(interactive)", line)
            assert m, f"docs/cli-json.md: {heading}: first line must say object/list of/lines of NAME or interactive"
            commands[heading.strip("`")] = (m.group(1) or "interactive", m.group(2))
        elif line.startswith("Keys:"):
            shapes[heading] = set(re.findall(r"`([^`]+)`", line))
        else:
            continue
        heading = None
    return shapes, commands


def leaves() -> list[str]:
    """Every command that runs something: the leaves of the tree (``doc checkin``)."""
    return sorted(" ".join(path) for path, sub in walk_commands(build_parser())
                  if not list(subparsers_of(sub)))


def check_shape(command: str, out: str, seen: dict[str, str]) -> None:
    """``out`` (a command's stdout) has the documented form, and every object the
    documented keys."""
    shapes, commands = documented()
    form, shape = commands[command]
    keys = shapes[shape]
    if form == "lines of":
        items = [json.loads(line) for line in out.splitlines() if line.strip()]
        items = [i for i in items if i.get("event") != "stopped"] if shape == "ready" else items
    else:
        data = json.loads(out)
        items = data if form == "list of" else [data]
        assert isinstance(data, list if form == "list of" else dict), (command, data)
    for item in items:
        assert set(item) == keys, f"`{command}`: keys {sorted(item)} differ from docs/cli-json.md's {shape}: {sorted(keys)}"
    if items:
        seen[command] = "shape"


# --------------------------------------------------------------------------- the scenario


@pytest.fixture
def ws(sample_workspace):
    return sample_workspace


@pytest.fixture
def crowd(ws, capsys, monkeypatch):
    """Run one command in-process with --json after it: (exit, parsed-or-raw stdout, stderr)."""
    seen: dict[str, str] = {}

    def run(*argv: str, expect: int = 0, shape: str | None = None, stdin: str | None = None,
            options_after: bool = True):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv) + (["--json", "-w", str(ws.root)] if options_after else []))
        out, err = capsys.readouterr()
        command = shape or " ".join(a for a in argv[:2] if not a.startswith("-"))
        command = command if command in leaves() else argv[0]
        command = command if command in leaves() else argv[0]
        assert code == expect, f"{argv}: exit {code}, stdout {out!r}, stderr {err!r}"
        if expect == 0 or shape:  # (exec answers its object with the command's exit status)
            check_shape(command, out, seen)
            seen.setdefault(command, "ran")
        else:
            error = json.loads(out)
            assert set(error) == ERROR_KEYS and error["exit"] == code and error["error"], error
            assert error["error"] in err  # the same words on stderr for a person
            seen.setdefault(command, "error")
        return json.loads(out) if out.strip() and not out.strip().count("\n{") else out

    run.seen = seen
    return run


def hold_a_chat(ws, chat: str) -> None:
    """A message from an unknown sender, held for onboarding (the way dispatch holds it)."""
    import asyncio

    from crowdtui.dispatch import inbound as inb
    from crowdtui.dispatch.service import Dispatch

    async def go():
        store = await ws.open_store()
        try:
            d = Dispatch(store, log=lambda line: None)
            ch, _ = await d.register(name="local", platform="local", callback_url="http://127.0.0.1:9/",
                                     prefixes=["local:"], callback_token="cb-secret")
            await d.receive(ch, inb.parse_inbound({"id": f"{chat}-1", "chat": chat, "text": "hi",
                                                   "sender": "ann", "sender_name": "Ann"}))
            await d.route_pending()
            await d.stop()
        finally:
            await store.close()

    asyncio.run(go())


@pytest.mark.docker
def test_every_command_answers_json_with_its_documented_keys(ws, crowd, tmp_path, agent_image, monkeypatch):
    content = tmp_path / "v2.md"
    content.write_text("# Guide\nversion two\n")
    # workspace, messages, events
    crowd("init", str(tmp_path / "other"))
    crowd("send", "lead", "hello")  # also registers the roster
    crowd("ls")
    inbox = crowd("inbox", "lead")
    crowd("read", str(inbox[0]["id"]), "--as", "lead")
    crowd("events", "--limit", "5")
    # documents, every transition
    crowd("doc", "new", "SOP", "Guide")
    crowd("doc", "ls")
    crowd("doc", "show", "SOP-001")
    crowd("doc", "checkout", "SOP-001")
    crowd("doc", "cancel", "SOP-001")
    crowd("doc", "checkout", "SOP-001", "--as", "lead")
    crowd("doc", "break-lock", "SOP-001")
    crowd("doc", "checkout", "SOP-001")
    assert crowd("doc", "checkin", "SOP-001", "-f", str(content))["version"] == 2
    crowd("doc", "route", "SOP-001", "review", "--to", "qa")
    task = crowd("doc", "tasks", "qa")[0]
    crowd("doc", "reassign", str(task["id"]), "--to", "echo")
    crowd("doc", "review", "SOP-001", "recommend", "-m", "fine", "--as", "echo")
    crowd("doc", "route", "SOP-001", "approval", "--to", "qa")
    assert crowd("doc", "approve", "SOP-001", "--as", "qa")["state"] == "EFFECTIVE"
    assert crowd("doc", "retire", "SOP-001")["state"] == "RETIRED"
    crowd("doc", "history", "SOP-001")
    crowd("doc", "new", "SOP", "Second")
    crowd("doc", "route", "SOP-002", "review", "--to", "qa")
    crowd("doc", "review", "SOP-002", "recommend", "-m", "fine", "--as", "qa")
    crowd("doc", "route", "SOP-002", "approval", "--to", "lead")
    assert crowd("doc", "reject", "SOP-002", "-m", "not yet", "--as", "lead")["state"] == "IN_REVIEW"
    crowd("doc", "release", "SOP-001", expect=1)  # not executable: a JSON error
    crowd("doc", "close", "SOP-001", expect=1)
    # tokens, secrets
    crowd("token", "issue", "lead")
    crowd("token", "ls", "lead")
    crowd("token", "revoke", "lead")
    monkeypatch.setenv("CROWD_SECRET_KEY", "ab" * 32)
    crowd("secret", "set", "API_KEY", stdin="s3cret\n")
    crowd("secret", "ls")
    crowd("secret", "rm", "API_KEY")
    # the approval queue
    from tests.cli.test_approvals_cli import open_request

    first = open_request(ws, "researcher", "edit", "Write notes.md", diff="+x\n")
    second = open_request(ws, "qa", "execute", "make test")
    crowd("approvals", "ls")
    crowd("approvals", "show", str(first))
    crowd("approvals", "allow", str(first), "--always")
    crowd("approvals", "reject", str(second))
    crowd("approvals", "reject", str(second), expect=1)  # answered already: a JSON error
    crowd("approvals", "rules")
    crowd("approvals", "revoke", "researcher", "edit")
    # routes, tasks, onboarding, channels
    crowd("route", "add", "platform=local chat=local:ops", "lead")
    wide = crowd("route", "add", "platform=*", "lead", "--as", "lead")
    assert wide["state"] == "pending"
    crowd("route", "approve", str(wide["id"]))
    wide = crowd("route", "add", "platform=*", "qa", "--as", "qa")
    crowd("route", "reject", str(wide["id"]))
    crowd("route", "mv", str(wide["id"] - 1), "1")
    crowd("route", "ls")
    crowd("route", "rm", str(wide["id"] - 1))
    crowd("task", "add", "standup", "lead", "every:1d", "post the standup")
    crowd("task", "pause", "standup")
    crowd("task", "resume", "standup")
    crowd("task", "ls")
    crowd("task", "runs", "standup")
    crowd("task", "rm", "standup")
    hold_a_chat(ws, "local:stranger")
    hold_a_chat(ws, "local:spammer")
    crowd("onboard", "ls")
    crowd("onboard", "approve", "local:stranger", "lead")
    crowd("onboard", "deny", "local:spammer")
    crowd("channel", "ls")
    crowd("channel", "send", "local:stranger", "hello from the operator")
    # engines (crowd.toml [engines.NAME]); the one added answers nowhere and is removed at once
    assert [e["name"] for e in crowd("engine", "ls")] == ["local"]
    assert crowd("engine", "add", "far", "--url", "ssh://crowd@127.0.0.1:1", "--label", "gpu")["labels"] == ["gpu"]
    assert crowd("engine", "check", "local")[0]["ok"] is True
    crowd("engine", "rm", "far")
    # containers and the image, on the real engine
    up = crowd("up", "echo")
    assert [a["name"] for a in up["started"]] == ["echo"] and up["failed"] == []
    crowd("restart", "echo")
    crowd("stats")
    crowd("logs", "echo")
    # exec's CMD... takes every word after NAME as it is: the options go before NAME
    ran = crowd("exec", "--json", "-w", str(ws.root), "echo", "sh", "-c", "echo out; echo err >&2; exit 3",
                expect=3, shape="exec", options_after=False)
    assert (ran["exit_code"], ran["stdout"], ran["stderr"], ran["truncated"]) == (3, "out\n", "err\n", False)
    assert crowd("down", "echo", "--rm")["stopped"][0]["removed"] is True
    assert crowd("image", "build")["tag"] == agent_image
    crowd("image", "tag")
    crowd("image", "ls")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    crowd("image", "prune", expect=3)  # no engine there: a JSON error (prune spares the shared engine)
    monkeypatch.delenv("DOCKER_HOST")
    assert crowd("doctor")["ok"] is True  # (tests/cli/test_doctor.py: its failures)
    crowd("completion", "bash")
    # interactive commands refuse --json in JSON
    for argv in (("attach", "echo"), ("channel", "local")):
        crowd(*argv, expect=2)
    crowd("exec", "--json", "-w", str(ws.root), "echo", expect=2, options_after=False)  # a shell: interactive
    _new_commands(ws, crowd.seen)
    long_running = {"hub", "serve", "web"}  # test_servers_print_a_ready_line
    missing = sorted(set(leaves()) - set(crowd.seen) - long_running)
    assert not missing, f"commands this test never ran: {missing}"


def _new_commands(ws, seen: dict[str, str]) -> None:
    """Commands the scenario does not know (added later): run with --json and nothing else;
    the answer must be one JSON document, an error object when the exit is non-zero."""
    for command in leaves():
        if command in seen or command in ("hub", "serve", "web"):
            continue
        proc = subprocess.run(CROWDTUI + command.split() + ["--json", "-w", str(ws.root)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        data = json.loads(proc.stdout)
        if proc.returncode:
            assert set(data) == ERROR_KEYS and data["exit"] == proc.returncode, (command, data)
        seen[command] = "bare"


def test_every_command_has_a_documented_shape():
    shapes, commands = documented()
    missing = [c for c in leaves() if c not in commands]
    assert not missing, f"add these to docs/cli-json.md: {missing}"
    unknown = {c: s for c, (_f, s) in commands.items() if s is not None and s not in shapes}
    assert not unknown, f"docs/cli-json.md names shapes it does not define: {unknown}"
    stale = [c for c in commands if c not in leaves() and c != "crowdtui"]
    assert not stale, f"docs/cli-json.md documents commands that do not exist: {stale}"


@pytest.mark.parametrize("command", ["hub", "serve", "web"])
def test_servers_print_a_ready_line(sample_workspace, command):
    """`hub --json` / `serve --json` / `web --json` print one JSON line when ready, then run
    until stopped."""
    extra = {"serve": ["--no-runtime"], "web": ["--no-hub", "--port", str(free_port())]}.get(command, [])
    proc = subprocess.Popen(CROWDTUI + [command, "--json", "-w", str(sample_workspace.root)] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        seen: dict[str, str] = {}
        check_shape(command, line, seen)
        assert json.loads(line)["pid"] == proc.pid
        if command == "web":  # the URL it printed opens the console page; without its key, refused
            import httpx

            url = json.loads(line)["url"]
            assert httpx.get(url, timeout=10, trust_env=False).status_code == 200
            assert httpx.get(url.split("?")[0], timeout=10, trust_env=False).status_code == 403
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            rest, _err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _err = proc.communicate()
    if command == "hub":
        assert json.loads(rest.strip().splitlines()[-1])["event"] == "stopped"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_global_options_after_the_command(sample_workspace, capsys, monkeypatch):
    """`crowdtui doc checkout SOP-001 --as lead`: the options work after the command, and
    one given before is not reset by the command's parser."""
    monkeypatch.chdir(sample_workspace.root.parent)  # not in the workspace: -w must be read
    root = str(sample_workspace.root)
    assert main(["doc", "new", "SOP", "Guide", "-w", root]) == 0
    assert main(["doc", "checkout", "SOP-001", "--as", "lead", "--workspace", root]) == 0
    assert "checked out by lead" in capsys.readouterr().out
    assert main(["--json", "--as", "lead", "-w", root, "doc", "show", "SOP-001"]) == 0
    assert json.loads(capsys.readouterr().out)["holder"] == "lead"
    assert main(["-w", root, "doc", "cancel", "SOP-001", "--as", "qa"]) == 1
    assert "lead" in capsys.readouterr().err  # refused: qa does not hold it


def test_usage_errors_in_json_mode(capsys):
    assert main(["doc", "checkout", "--json"]) == 2  # ID missing
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert error["exit"] == 2 and "ID" in error["error"] and "doc checkout" in error["error"]
    assert "usage" not in err  # one line for a person, no usage block in JSON mode
    assert main(["no-such-command", "--json"]) == 2
    assert "invalid choice" in json.loads(capsys.readouterr().out)["error"]
    assert main(["--json"]) == 2  # the console is interactive
    assert "interactive" in json.loads(capsys.readouterr().out)["error"]


def test_an_unexpected_failure_is_still_one_json_answer(sample_workspace, capsys, monkeypatch):
    """A bug (an exception no handler expects) in --json mode: the traceback on stderr for a
    person, and the JSON error object on stdout with exit 1 for the script."""
    import crowdtui.cli.secret_cmds as secret_cmds

    def broken(args):
        raise KeyError("boom")

    monkeypatch.setattr(secret_cmds, "cmd_ls", broken)
    assert main(["secret", "ls", "--json", "-w", str(sample_workspace.root)]) == 1
    out, err = capsys.readouterr()
    error = json.loads(out)
    assert error["exit"] == 1 and "KeyError" in error["error"] and "bug" in error["error"]
    assert "Traceback" in err
    with pytest.raises(KeyError):  # without --json: the plain traceback, as before
        main(["secret", "ls", "-w", str(sample_workspace.root)])
