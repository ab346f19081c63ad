"""The chat side is called dispatch; its old user-facing names still work: crowd.toml's
``[engine] port`` (read when ``[dispatch]`` is absent), ``hub --no-engine`` and ``channel
local --engine`` (hidden aliases). Both per-workspace locks name their holder the same way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from crowdtui.cli import build_parser
from crowdtui.dispatch.serve_lock import ServeLock
from crowdtui.hub.hub_lock import HubLock
from tests.dispatch.serve_helpers import REPO, cli, start_serve, stop, wait_ready


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_port(ws, section: str, port: int) -> None:
    path = ws.root / "crowd.toml"
    text = path.read_text()
    assert "[dispatch]\n" in text and text.count("\nport = 0\n") == 1, text  # the template's section
    path.write_text(text.replace("[dispatch]\n", f"[{section}]\n").replace("\nport = 0\n", f"\nport = {port}\n"))


@pytest.mark.parametrize("section", ["dispatch", "engine"])
async def test_serve_listens_on_the_port_crowd_toml_names_under_either_name(workspace, section):
    port = _free_port()
    _set_port(workspace, section, port)
    proc = start_serve(workspace, "--no-hub", "--no-runtime")
    try:
        info = await wait_ready(workspace, proc)
    finally:
        rc, _out, err = stop(proc)
    assert info["url"] == f"http://127.0.0.1:{port}", (info, err)
    assert rc == 0, err


def test_dispatch_wins_over_its_old_name_when_both_are_there(workspace):
    from crowdtui.workspace import Workspace

    ws = Workspace(workspace.root, {"dispatch": {"port": 8101}, "engine": {"port": 8102}})
    assert ws.dispatch_port() == 8101
    assert Workspace(workspace.root, {"engine": {"port": 8102}}).dispatch_port() == 8102
    assert Workspace(workspace.root, {}).dispatch_port() == 0


def test_old_flag_names_parse_as_the_new_ones_and_are_not_advertised(workspace):
    parser = build_parser()
    assert parser.parse_args(["hub", "--no-engine"]).no_dispatch is True
    assert parser.parse_args(["hub", "--no-dispatch"]).no_dispatch is True
    assert parser.parse_args(["hub"]).no_dispatch is False
    url = "http://127.0.0.1:9"
    assert parser.parse_args(["channel", "local", "--engine", url]).dispatch == url
    assert parser.parse_args(["channel", "local", "--dispatch", url]).dispatch == url
    hub_help = cli(workspace, "hub", "--help").stdout
    assert "--no-dispatch" in hub_help and "--no-engine" not in hub_help, hub_help
    chan_help = cli(workspace, "channel", "local", "--help").stdout
    assert "--dispatch" in chan_help and "--engine" not in chan_help, chan_help


HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from crowdtui.dispatch.serve_lock import ServeLock\n"
    "from crowdtui.hub.hub_lock import HubLock\n"
    "lock = {'hub': HubLock, 'serve': ServeLock}[sys.argv[1]](Path(sys.argv[2]))\n"
    "lock.acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.mark.parametrize("kind, cls", [("hub", HubLock), ("serve", ServeLock)])
def test_both_locks_name_their_holder_as_a_dict_with_its_pid(tmp_path, kind, cls):
    path = tmp_path / f"{kind}.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, kind, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout.readline().strip() == "held"
        holder = cls(path).holder()
        assert isinstance(holder, dict) and holder["pid"] == proc.pid, holder
        assert holder["started"] > 0
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert cls(tmp_path / "never.lock").holder() == {}
