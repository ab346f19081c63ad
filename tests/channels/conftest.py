"""Fixtures for network channel tests: a real store and a real dispatch (HTTP API on
127.0.0.1, route ``*`` -> lead), and the channel started as its own process through the
CLI (``crowdtui channel ...``), killed by its pid at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from crowdtui.dispatch.api import build_app
from crowdtui.dispatch.http_server import LocalServer
from crowdtui.dispatch.routes import add_route
from crowdtui.dispatch.service import Dispatch, DispatchConfig

REPO = Path(__file__).resolve().parents[2]
KEY = "k-channels"
SECRET_KEY = "5a" * 32


@dataclass
class Crowd:
    ws: object
    store: object
    dispatch: Dispatch
    url: str
    lines: list
    server: LocalServer

    async def restart_api(self, register_key: str) -> None:
        """Dispatch's HTTP side again, on a new port with a new register key (a restarted serve)."""
        await self.server.stop()
        self.server = await LocalServer(build_app(self.dispatch, register_key=register_key)).start()
        self.url = self.server.url


@pytest.fixture
async def crowd(workspace, monkeypatch):
    from qms import Store

    monkeypatch.setenv("CROWD_SECRET_KEY", SECRET_KEY)
    store = await Store.open(workspace.db_path)
    await store.upsert_agent("lead", path="lead", tier=0, parent=None)
    await add_route(store, "*", "lead", actor="operator", now=0)
    lines: list[str] = []
    eng = Dispatch(store, config=DispatchConfig(health_interval=60, outbound_attempts=50), log=lines.append)
    await eng.start()
    server = await LocalServer(build_app(eng, register_key=KEY)).start()
    crowd = Crowd(workspace, store, eng, server.url, lines, server)
    yield crowd
    await crowd.server.stop()
    await eng.stop()
    await store.close()


async def wait_for(predicate, timeout: float, what: str, ch: "ChannelProcess | None" = None):
    """tests.waiting.wait_for, and on a timeout what the channel process said."""
    from tests.waiting import wait_for as plain_wait_for

    try:
        return await plain_wait_for(predicate, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; channel log:\n{ch.stderr if ch else ''}") from None


async def rows(crowd: Crowd, channel: str) -> list:
    """The inbound rows the channel named ``channel`` brought in, in order."""
    from qms.inbound import list_inbound

    return [r for r in await list_inbound(crowd.store) if r.channel == channel]


async def set_secret(crowd: Crowd, name: str, value: str) -> None:
    from crowdtui.secrets import Vault

    await Vault.open(crowd.ws, crowd.store).set(name, value)


class ChannelProcess:
    """``crowdtui channel KIND ...`` as a child process; stderr kept in a file."""

    def __init__(self, crowd: Crowd, kind: str, *args: str, serve_json: bool = False) -> None:
        self.crowd = crowd
        where = [] if serve_json else ["--dispatch", crowd.url, "--register-key", KEY]
        self.argv = [sys.executable, "-m", "crowdtui", "--workspace", str(crowd.ws.root), "channel", kind,
                     *where, "--max-backoff", "1", *args]
        self.log = crowd.ws.root / f"channel-{kind}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ChannelProcess":
        env = {**os.environ, "CROWD_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        return self

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    async def kill(self, sig=signal.SIGKILL) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = await asyncio.to_thread(self.proc.wait, 30)
        self.proc = None
        return rc


@pytest.fixture
async def channels():
    started: list[ChannelProcess] = []

    def start(crowd: Crowd, kind: str, *args: str, serve_json: bool = False) -> ChannelProcess:
        ch = ChannelProcess(crowd, kind, *args, serve_json=serve_json).start()
        started.append(ch)
        return ch

    yield start
    for ch in started:
        await ch.kill()
