"""The hub opens an agent's egress door beside its MCP door, and closes it with it."""

from __future__ import annotations

import asyncio

from crowdtui.roster import AgentDef


def defs(ws, port):
    return {
        "alpha": AgentDef(name="alpha", file=ws.agents_dir / "alpha" / "AGENT.md", rel_path="alpha", tier=0,
                          network="allowlist", egress=(f"127.0.0.1:{port}",)),
        "beta": AgentDef(name="beta", file=ws.agents_dir / "beta" / "AGENT.md", rel_path="beta", tier=0),
    }


async def test_egress_door_follows_the_mcp_door(workspace, store, http_server):
    from crowdtui.hub.hub import Hub

    port = http_server("hooked")
    definitions = defs(workspace, port)
    for name in definitions:
        await store.upsert_agent(name, path=name, tier=0)
    hub = Hub(workspace, store, definitions=definitions.get)
    await hub.start()
    try:
        await hub.open_door("alpha")
        await hub.open_door("beta")
        sock = workspace.ipc_dir("alpha") / "egress.sock"
        assert sock.exists() and not (workspace.ipc_dir("beta") / "egress.sock").exists()
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(f"GET http://127.0.0.1:{port}/via-hub HTTP/1.1\r\n\r\n".encode())
        got = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert got.startswith(b"HTTP/1.0 200") and b"hello from hooked /via-hub" in got
        await hub.close_door("alpha")
        assert not sock.exists()
        await hub.open_door("alpha")
        assert sock.exists()
    finally:
        await hub.stop()
    assert not (workspace.ipc_dir("alpha") / "egress.sock").exists()
