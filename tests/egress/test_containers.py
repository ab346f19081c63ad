"""Egress from real containers: allowlisted agents go through their proxy; `none` reaches nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from crowdtui.hub.egress import EgressProxy
from crowdtui.roster import AgentDef
from crowdtui.runtime.containers import Runtime

pytestmark = pytest.mark.docker

# Run inside the container as the agent: fetch a URL with urllib (which honours HTTP_PROXY),
# print one JSON line {"status": ..., "body": ...} or {"error": ...}.
FETCH = r"""
import json, sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=15) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"""

# Straight TCP, no proxy: does any connection leave the container?
DIRECT = r"""
import json, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()
    print(json.dumps({"connected": True}))
except Exception as e:
    print(json.dumps({"connected": False, "error": f"{type(e).__name__}: {e}"}))
"""

# A CONNECT tunnel by hand through the forwarder at 127.0.0.1:3128, then HTTP inside it.
CONNECT = r"""
import json, socket, sys
s = socket.create_connection(("127.0.0.1", 3128), timeout=15)
s.sendall(f"CONNECT 127.0.0.1:{sys.argv[1]} HTTP/1.1\r\n\r\n".encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
s.sendall(b"GET /t HTTP/1.0\r\nHost: t\r\n\r\n")
body = b""
while chunk := s.recv(65536):
    body += chunk
print(json.dumps({"status": head.decode().splitlines()[0], "body": body.decode()}))
"""


def agent(ws, name, **fields) -> AgentDef:
    return AgentDef(name=name, file=Path(ws.agents_dir) / name / "AGENT.md", rel_path=name, tier=0,
                    command=("sleep", "infinity"), **fields)


async def run_py(container, script: str, *args: str, environment: dict | None = None) -> dict:
    def go():
        code, out = container.exec_run(["python3", "-c", script, *args], user="1000:1000",
                                       environment=environment)
        return out.decode("utf-8", "replace")

    out = await asyncio.to_thread(go)
    return json.loads(out.strip().splitlines()[-1])


async def test_allowlisted_agent_fetches_only_what_its_list_allows(workspace, store, docker_client, agent_image,
                                                                   http_server):
    ok_port, other_port = http_server("allowed"), http_server("other")
    alpha = agent(workspace, "alpha", network="allowlist", egress=(f"127.0.0.1:{ok_port}",))
    async with EgressProxy(workspace, store) as proxy:
        await proxy.open_door(alpha)
        info = await Runtime(workspace, docker_client).start(alpha)
        c = docker_client.containers.get(info.container_id)
        attrs = c.attrs
        assert attrs["HostConfig"]["NetworkMode"] == "none"
        env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
        assert env["HTTP_PROXY"] == env["https_proxy"] == "http://127.0.0.1:3128"
        assert env["NO_PROXY"] == "localhost,127.0.0.1"

        # NO_PROXY keeps 127.0.0.1 for the container's own loopback, where nothing listens
        got = await run_py(c, FETCH, f"http://127.0.0.1:{ok_port}/hello")
        assert "Connection refused" in got.get("error", ""), got
        # the test server is on the host's loopback: reach it through the proxy (HTTP_PROXY from the
        # container's environment, honoured by urllib once 127.0.0.1 is not exempted)
        through = {"NO_PROXY": "localhost", "no_proxy": "localhost"}
        got = await run_py(c, FETCH, f"http://127.0.0.1:{ok_port}/hello", environment=through)
        assert got == {"status": 200, "body": f"hello from allowed /hello host=127.0.0.1:{ok_port}"}

        denied = await run_py(c, FETCH, f"http://127.0.0.1:{other_port}/", environment=through)
        assert denied["status"] == 403 and "is not allowed for agent alpha" in denied["body"]
        denied_host = await run_py(c, FETCH, f"http://host.not-listed.test:{ok_port}/", environment=through)
        assert denied_host["status"] == 403

        decisions = [(e.kind, e.actor, e.detail["host"], e.detail["port"])
                     for e in await store.events_after(0) if e.kind in ("egress.allowed", "egress.denied")]
        assert decisions == [
            ("egress.allowed", "alpha", "127.0.0.1", ok_port),
            ("egress.denied", "alpha", "127.0.0.1", other_port),
            ("egress.denied", "alpha", "host.not-listed.test", ok_port),
        ]
        # a CONNECT tunnel through the forwarder (what HTTPS clients do), raw from inside the container
        tunnel = await run_py(c, CONNECT, str(ok_port))
        assert tunnel["status"].startswith("HTTP/1.1 200") and tunnel["body"].endswith("hello from allowed /t host=t")
        # straight out, bypassing the proxy: nothing leaves
        assert (await run_py(c, DIRECT, "127.0.0.1", str(ok_port)))["connected"] is False


async def test_network_none_reaches_nothing(workspace, store, docker_client, agent_image, http_server):
    port = http_server("host")
    beta = agent(workspace, "beta")  # network: none is the default
    async with EgressProxy(workspace, store) as proxy:
        assert await proxy.open_door(beta) is None
        info = await Runtime(workspace, docker_client).start(beta)
        c = docker_client.containers.get(info.container_id)
        assert c.attrs["HostConfig"]["NetworkMode"] == "none"
        assert not any(e.startswith(("HTTP_PROXY=", "CROWD_EGRESS=")) for e in c.attrs["Config"]["Env"])
        assert c.attrs["Config"]["Cmd"] == ["sleep", "infinity"]  # nothing to prepare: no crowd-entry
        code, out = c.exec_run(["bash", "-c", "ls /sys/class/net"], user="1000:1000")
        assert out.decode().split() == ["lo"]
        assert (await run_py(c, DIRECT, "127.0.0.1", str(port)))["connected"] is False
        # even through the proxy port an allowlisted agent would use: nothing listens
        got = await run_py(c, FETCH, f"http://127.0.0.1:{port}/",
                           environment={"HTTP_PROXY": "http://127.0.0.1:3128", "NO_PROXY": ""})
        assert "Connection refused" in got.get("error", ""), got
        assert not (workspace.ipc_dir("beta") / "egress.sock").exists()
    assert not [e for e in await store.events_after(0) if e.kind in ("egress.allowed", "egress.denied")]
