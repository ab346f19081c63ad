"""`crowdtui completion bash|zsh`: the script is sourced in a real bash and a real zsh, and
the completion function is asked what it offers for command lines typed so far."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crowdtui.cli import build_parser, subparsers_of, walk_commands

CROWDTUI = str(Path(sys.executable).parent / "crowdtui")
# the scripts run `crowdtui completion --agents` for agents' names: this venv's crowdtui
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
ENV.pop("CROWD_WORKSPACE", None)


def bash_offers(words: list[str], tmp_path: Path) -> list[str]:
    """What bash's completion offers for ``words`` (the last one being typed)."""
    script = tmp_path / "crowdtui.bash"
    script.write_text(subprocess.run([CROWDTUI, "completion", "bash"], capture_output=True, text=True,
                                     check=True).stdout)
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    code = (f"source {script}; complete -p crowdtui >/dev/null || exit 9; COMP_WORDS=({quoted}); "
            f"COMP_CWORD={len(words) - 1}; _crowdtui; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", code], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path, env=ENV)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line]


def zsh_offers(words: list[str], tmp_path: Path) -> list[str]:
    """The same in zsh: compinit loaded, the script sourced (it registers itself with
    compdef), and compadd/_describe recording what the function hands them."""
    script = tmp_path / "_crowdtui"
    script.write_text(subprocess.run([CROWDTUI, "completion", "zsh"], capture_output=True, text=True,
                                     check=True).stdout)
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    code = ("autoload -U compinit; compinit -D -u; "
            f"source {script}; [[ $_comps[crowdtui] == _crowdtui ]] || exit 9; "
            '_describe() { shift 3; print -l -- "${(@P)1}"; }; '
            'compadd() { shift; print -l -- "${(@P)1}"; }; '
            '_files() { print -- "<folders>"; }; '
            f"words=({quoted}); CURRENT={len(words)}; PREFIX=${{words[CURRENT]}}; _crowdtui")
    out = subprocess.run(["zsh", "-f", "-c", code], capture_output=True, text=True, timeout=30, cwd=tmp_path, env=ENV)
    assert out.returncode == 0, out.stderr
    return [line.split(":", 1)[0] if not line.startswith("-") else line for line in out.stdout.splitlines() if line]


def top_level() -> list[str]:
    return [name for name, _sub in subparsers_of(build_parser())]


def test_bash_completes_commands_options_and_choices(tmp_path):
    assert bash_offers(["crowdtui", ""], tmp_path) == top_level()  # every command, new ones too
    assert bash_offers(["crowdtui", "doc", "ch"], tmp_path) == ["checkout", "checkin"]
    assert bash_offers(["crowdtui", "-w", "/tmp", "doc", "route", "SOP-001", ""], tmp_path) == ["review", "approval"]
    # global options after the command, and the command's own
    assert bash_offers(["crowdtui", "doc", "checkout", "SOP-001", "--"], tmp_path) == \
        ["--as", "--help", "--json", "--lease", "--workspace"]
    (tmp_path / "wsdir").mkdir()
    assert "wsdir" in bash_offers(["crowdtui", "--workspace", "ws"], tmp_path)
    assert bash_offers(["crowdtui", "completion", ""], tmp_path) == ["bash", "zsh"]


def test_every_command_path_completes_its_subcommands_in_bash(tmp_path):
    for path, sub in walk_commands(build_parser()):
        children = [name for name, _c in subparsers_of(sub)]
        if children:
            assert bash_offers(["crowdtui", *path, ""], tmp_path) == children, path


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (apt-get install zsh)")
def test_zsh_completes_commands_options_and_choices(tmp_path):
    assert zsh_offers(["crowdtui", ""], tmp_path) == top_level()
    assert zsh_offers(["crowdtui", "doc", ""], tmp_path)[:3] == ["new", "ls", "show"]
    assert zsh_offers(["crowdtui", "doc", "route", "X", ""], tmp_path) == ["review", "approval"]
    assert "--lease" in zsh_offers(["crowdtui", "doc", "checkout", "X", "--"], tmp_path)
    assert zsh_offers(["crowdtui", "-w", ""], tmp_path) == ["<folders>"]


def test_completion_json_and_bad_shell(capsys):
    from crowdtui.cli import main

    assert main(["completion", "bash", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["shell"] == "bash" and "complete -o default -F _crowdtui crowdtui" in data["script"]
    assert main(["completion", "fish", "--json"]) == 2
    assert "fish" in json.loads(capsys.readouterr().out)["error"]


def test_agent_names_complete_from_the_workspace_roster(sample_workspace, tmp_path):
    """Where a command takes an agent's name (and after --as), the roster's names are
    offered: from -w DIR when given, else from the workspace around the current folder."""
    from crowdtui.roster import load_roster

    names = sorted(load_roster(sample_workspace).names())
    root = str(sample_workspace.root)
    assert bash_offers(["crowdtui", "-w", root, "up", ""], tmp_path) == names
    assert bash_offers(["crowdtui", "--workspace", root, "attach", "l"], tmp_path) == ["lead"]
    assert bash_offers(["crowdtui", "-w", root, "doc", "route", "X", ""], tmp_path) == ["review", "approval"]
    assert bash_offers(["crowdtui", "-w", root, "send", "q"], tmp_path) == ["qa"]
    assert bash_offers(["crowdtui", "-w", root, "secret", "set", ""], tmp_path) == []  # a secret's name: no
    assert bash_offers(["crowdtui", "-w", root, "doc", "checkout", "X", "--as", ""], tmp_path) == names
    assert bash_offers(["crowdtui", "up", ""], tmp_path) == []  # no workspace around tmp_path: nothing
    if shutil.which("zsh"):
        assert zsh_offers(["crowdtui", "-w", root, "restart", ""], tmp_path) == names
        assert zsh_offers(["crowdtui", "-w", root, "ls", "--as", ""], tmp_path) == names
