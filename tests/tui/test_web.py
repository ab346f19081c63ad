"""``crowdtui web``: the console served to a browser over 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp

from tests.tui.conftest import add_agent, wait_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_web_serves_the_console_and_keeps_the_hub(workspace, store):
    add_agent(workspace, "alice")
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "web",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/") as r:
                        page = await r.text()
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert proc.poll() is None, proc.stdout.read().decode()
                    assert time.monotonic() < deadline, "the web server did not answer"
                    await asyncio.sleep(0.2)
            assert "crowdtui" in page and f"ws://127.0.0.1:{port}/ws" in page
            started = await wait_store(
                lambda: store.events_after(0, kinds=["hub.started"]), 20, what="hub started")
            assert started[0].detail.get("pid") == proc.pid

            # a browser visit: a console process drawn over the websocket
            seen = b""
            async with http.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30") as ws:
                await ws.send_str(json.dumps(["resize", {"width": 100, "height": 30}]))
                deadline = time.monotonic() + 60
                while b"alice" not in seen or b"hub: other" not in seen:
                    assert time.monotonic() < deadline, f"no console drawn: {seen[-500:]!r}"
                    msg = await ws.receive(timeout=60)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        seen += msg.data
                    elif msg.type == aiohttp.WSMsgType.TEXT:
                        seen += msg.data.encode()
                    else:
                        raise AssertionError(f"websocket ended: {msg.type} {seen[-500:]!r}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    stopped = await store.events_after(0, kinds=["hub.stopped"])
    assert stopped and stopped[-1].detail.get("pid") == proc.pid


def test_web_refuses_a_bad_port(workspace):
    r = subprocess.run([sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "web",
                        "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "crowdtui: --port 70000 is not a port; use 1-65535"
