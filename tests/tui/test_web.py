"""``crowdtui web``: the console served to a browser over 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import aiohttp

from tests.tui.conftest import add_agent, wait_store


def wrong_key(key: str) -> str:
    """The key with its last character changed: always a different key (a key that ends
    in "x" stayed the same when the last character was simply replaced by "x")."""
    return key[:-1] + ("y" if key.endswith("x") else "x")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def read_console(ws, seen: bytearray, *needles: bytes, timeout: float = 60) -> None:
    """Read what the console draws over the websocket until every needle is there."""
    deadline = time.monotonic() + timeout
    while not all(n in seen for n in needles):
        assert time.monotonic() < deadline, f"no console drawn: {bytes(seen[-500:])!r}"
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            seen += msg.data
        elif msg.type == aiohttp.WSMsgType.TEXT:
            seen += msg.data.encode()
        else:
            raise AssertionError(f"websocket ended: {msg.type} {bytes(seen[-500:])!r}")


async def test_web_serves_the_console_only_with_its_key_and_keeps_the_hub(workspace, store, tmp_path):
    add_agent(workspace, "alice")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out_path = tmp_path / "web.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crowdtui", "--workspace", str(workspace.root), "web",
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        # The server prints the full URL, key included.
        deadline = time.monotonic() + 30
        while not re.search(rf"open {origin}/\?k=\S+\n", out_path.read_text()):
            assert proc.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, f"no URL printed: {out_path.read_text()!r}"
            await asyncio.sleep(0.1)
        url = re.search(rf"open ({origin}/\?k=(\S+))\n", out_path.read_text())
        page_url, key = url.group(1), url.group(2)
        assert len(key) >= 20

        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(page_url) as r:
                        page = await r.text()
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert proc.poll() is None, out_path.read_text()
                    assert time.monotonic() < deadline, "the web server did not answer"
                    await asyncio.sleep(0.2)
            ws_url = f"ws://127.0.0.1:{port}/ws/{key}"
            assert "crowdtui" in page and ws_url in page

            # Refused: the page without the key or with a wrong one, a foreign Host (DNS rebinding).
            for refused in (f"{origin}/", f"{origin}/?k=", f"{origin}/?k={wrong_key(key)}"):
                async with http.get(refused) as r:
                    assert r.status == 403, refused
                    assert "/ws/" not in await r.text() and key not in await r.text()
            async with http.get(page_url, headers={"Host": f"rebound.example:{port}"}) as r:
                assert r.status == 403
            # Refused: websockets without the key, with a wrong key, from another origin, or
            # with no Origin, or through a foreign Host.
            for ws_try, headers in [
                (f"{origin}/ws", {"Origin": origin}),
                (f"{origin}/ws?k={key}", {"Origin": origin}),
                (f"{origin}/ws/{wrong_key(key)}", {"Origin": origin}),
                (f"{origin}/ws/{key}", {"Origin": "http://evil.example"}),
                (f"{origin}/ws/{key}", {"Origin": f"http://localhost.evil.example:{port}"}),
                (f"{origin}/ws/{key}", {}),
                (f"{origin}/ws/{key}", {"Origin": f"http://rebound.example:{port}",
                                        "Host": f"rebound.example:{port}"}),
            ]:
                try:
                    async with http.ws_connect(ws_try, headers=headers):
                        raise AssertionError(f"websocket accepted: {ws_try} {headers}")
                except aiohttp.WSServerHandshakeError as e:
                    assert e.status == 403, (ws_try, headers, e.status)

            started = await wait_store(
                lambda: store.events_after(0, kinds=["hub.started"]), 20, what="hub started")
            assert started[0].detail.get("pid") == proc.pid

            # Two browser visits at once: each a console drawn over its websocket, same crew.
            async with http.ws_connect(f"{ws_url}?width=100&height=30", headers={"Origin": origin}) as one, \
                    http.ws_connect(f"{ws_url}?width=90&height=28", headers={"Origin": origin}) as two:
                await one.send_str(json.dumps(["resize", {"width": 100, "height": 30}]))
                await two.send_str(json.dumps(["resize", {"width": 90, "height": 28}]))
                seen_one, seen_two = bytearray(), bytearray()
                await asyncio.gather(
                    read_console(one, seen_one, b"alice", b"hub: other"),
                    read_console(two, seen_two, b"alice", b"hub: other"),
                )
                assert not one.closed and not two.closed
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
