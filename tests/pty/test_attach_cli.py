"""`crowdtui attach` and `crowdtui exec` from a real pseudo-terminal (pexpect) and from scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect

CROWDTUI = [sys.executable, "-m", "crowdtui"]
WAIT = 20


def spawn(workspace, *args: str, rows: int = 24, cols: int = 80) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable, ["-m", "crowdtui", "--workspace", str(workspace.root), *args],
        env={**os.environ, "TERM": "xterm"}, dimensions=(rows, cols), timeout=WAIT,
    )
    return child


def run(workspace, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CROWDTUI, "--workspace", str(workspace.root), *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def running(container) -> bool:
    container.reload()
    return container.status == "running"


def define(workspace, name: str) -> None:
    folder = Path(workspace.agents_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(f"---\ndescription: {name}\n---\n")


def test_attach_passes_output_and_input_and_detaches_with_ctrl_bracket(workspace, start_container):
    c = start_container("lead")
    child = spawn(workspace, "attach", "lead", rows=24, cols=80)
    child.expect_exact("attached to lead. Ctrl-] detaches; the agent keeps running.")
    child.send("echo typed-$((6*7))\r")
    child.expect_exact("typed-42")
    # the window's size follows the local terminal, also after a SIGWINCH
    child.send("stty size\r")
    child.expect(r"[\r\n]24 80\r\n")
    child.setwinsize(31, 97)
    child.send("stty size\r")
    child.expect(r"[\r\n]31 97\r\n")
    # output the agent makes on its own arrives too
    child.send("sleep 0.3; echo on-its-own-$((1+1))\r")
    child.expect_exact("on-its-own-2")
    child.send("\x1d")  # Ctrl-]
    child.expect_exact("detached from lead; it keeps running")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert running(c)
    # and the shell inside still answers a later attach
    again = spawn(workspace, "attach", "lead")
    again.expect_exact("Ctrl-] detaches")
    again.send("echo back-$((2+3))\r")
    again.expect_exact("back-5")
    again.send("\x1d")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0 and running(c)


def test_attach_ends_when_the_agent_stops(workspace, start_container):
    start_container("lead")
    child = spawn(workspace, "attach", "lead")
    child.expect_exact("Ctrl-] detaches")
    child.send("exit 3\r")
    child.expect_exact("lead's terminal closed: the agent stopped")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_attach_to_a_stopped_unknown_or_unreachable_agent_says_so(workspace, start_container):
    stopped = start_container("qa", ["sh", "-c", "exit 4"])
    stopped.wait(timeout=WAIT)
    out = run(workspace, "attach", "qa")
    assert out.returncode != 0
    assert out.stderr == "crowdtui: agent qa is not running (exited with code 4); start it with `crowdtui up qa`\n"

    define(workspace, "idle")
    out = run(workspace, "attach", "idle")
    assert out.returncode != 0
    assert out.stderr == "crowdtui: agent idle is not running; start it with `crowdtui up idle`\n"

    out = run(workspace, "attach", "ghost")
    assert out.returncode != 0
    assert out.stderr == f"crowdtui: no agent named ghost in {workspace.root}; `crowdtui ls` lists the agents\n"

    out = run(workspace, "attach", "../etc")
    assert out.returncode != 0 and "is not a valid agent name" in out.stderr
    assert out.stderr.count("\n") == 1

    out = run(workspace, "attach", "lead", env={"DOCKER_HOST": f"unix://{workspace.root}/no-engine.sock"})
    assert out.returncode == 3
    assert out.stderr.startswith("crowdtui: no Docker engine answers at unix://")
    assert out.stderr.count("\n") == 1


def test_attach_from_a_script_says_it_needs_a_terminal(workspace, start_container):
    c = start_container("lead")
    out = run(workspace, "attach", "lead")
    assert out.returncode == 2
    assert out.stderr.startswith("crowdtui: crowdtui attach needs a terminal")
    assert running(c)


def test_exec_opens_an_interactive_bash(workspace, start_container):
    c = start_container("lead", ["sleep", "infinity"])
    child = spawn(workspace, "exec", "lead", rows=27, cols=88)
    child.expect_exact("$ ")  # the prompt: bash is reading
    child.send("echo shell=$0; stty size\r")
    child.expect_exact("shell=bash")
    child.expect(r"[\r\n]27 88\r\n")
    child.send("exit 5\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5
    assert running(c)


def test_exec_runs_a_command_for_scripts(workspace, start_container):
    start_container("lead", ["sleep", "infinity"])
    out = run(workspace, "exec", "lead", "sh", "-c", "echo out; echo err >&2; exit 6")
    assert (out.returncode, out.stdout, out.stderr) == (6, "out\n", "err\n")
    out = run(workspace, "exec", "lead", "--", "ls", "-d", "/run")
    assert (out.returncode, out.stdout) == (0, "/run\n")
    out = run(workspace, "exec", "lead", "no-such-program")
    assert out.returncode != 0 and "no-such-program" in out.stdout + out.stderr
    out = run(workspace, "exec", "lead")
    assert out.returncode == 2 and "no command given" in out.stderr
    out = run(workspace, "exec", "ghost", "true")
    assert out.returncode != 0 and "no agent named ghost" in out.stderr


def test_ctrl_bracket_in_exec_closes_it_and_ends_what_it_ran(workspace, start_container):
    c = start_container("lead", ["sleep", "infinity"])
    child = spawn(workspace, "exec", "lead", "sh", "-c", "echo started; exec sleep 7777")
    child.expect_exact("started")
    child.send("\x1d")
    child.expect_exact("closed the exec in lead")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    script = 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done'
    assert "sleep 7777" not in c.exec_run(["sh", "-c", script]).output.decode()
    assert running(c)
