"""Random and mangled frames from an authenticated relay (fixed seed, bounded): the hub never runs
anything for an agent not placed on the relay's engine, never crashes, and keeps serving a good relay."""

from __future__ import annotations

import json
import random
import struct

from crowdtui.hub import relay_wire as wire
from crowdtui.hub.relay_credentials import issue_engine_credential

from .conftest import OTHER
from .test_relay_trust import HandRelay


NOT_HERE = ["alpha", "beta", "ALPHA", "alpha\x00", "../alpha", "", "a" * 500, "lead"]


def mangled(rng: random.Random) -> bytes:
    """One hostile burst: random bytes, frames with random types/ids/lengths, OPENs naming others."""
    choice = rng.randrange(5)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if choice == 1:
        return struct.pack("!BII", rng.randrange(256), rng.randrange(2**32), rng.randrange(2**32))
    if choice == 2:
        name = rng.choice(NOT_HERE + [None, 7])
        return wire.control(wire.OPEN, rng.randrange(1, 50) | 1, agent=name, door=rng.choice(["mcp", "egress", "x"]))
    if choice == 3:
        payload = rng.randbytes(rng.randrange(0, 100))
        return wire.frame(rng.choice([wire.DATA, wire.CREDIT, wire.CLOSE, wire.HELLO]), rng.randrange(0, 9), payload)
    return wire.frame(wire.OPEN, rng.randrange(1, 9) | 1, rng.randbytes(rng.randrange(0, 40)))


async def test_mangled_frames_never_reach_another_agents_door(local_hub, store, workspace, tmp_path):
    rng = random.Random(19)
    credential = issue_engine_credential(workspace, OTHER)
    closed = 0
    for case in range(25):
        relay = await HandRelay.connect(local_hub.relay.address, credential, tmp_path / "cred")
        await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
        await relay.expect(wire.WELCOME)
        if case % 3 == 0:  # well-formed OPENs naming agents of other engines (or no agent): refused, link kept
            burst = [wire.control(wire.OPEN, 2 * i + 1, agent=rng.choice(NOT_HERE), door=rng.choice(wire.DOORS))
                     for i in range(rng.randrange(1, 6))]
        else:
            burst = [mangled(rng) for _ in range(rng.randrange(1, 6))]
        for data in burst:
            try:
                await relay.send(data)
            except ConnectionError:
                break
        try:
            while await relay.next(timeout=0.4) is not None:
                pass
            closed += 1  # the hub ended the link (a protocol error)
        except TimeoutError:
            pass  # the link lives on (refused streams, late frames dropped)
        relay.close()
    assert 0 < closed < 25  # both kinds of outcome were exercised
    # the hub still serves a well-behaved relay, and nothing ran as alpha or beta
    relay = await HandRelay.connect(local_hub.relay.address, credential, tmp_path / "cred")
    await relay.send(wire.control(wire.HELLO, engine=OTHER, version=1))
    await relay.expect(wire.WELCOME)
    answer = await relay.mcp_call(101, "gamma", "send_message", {"to": "alpha", "body": "still fine"})
    assert "error" not in answer, answer
    relay.close()
    await local_hub.audit.drain()
    calls = await store.events_after(0, limit=10000, kinds=["hub.call", "hub.calling", "hub.denied"])
    assert {e.actor for e in calls} <= {"gamma"}
    assert [(m.sender, m.body) for m in await store.inbox("alpha")] == [("gamma", "still fine")]
    refused = await store.events_after(0, limit=10000, kinds=["relay.refused"])
    assert refused and all(json.dumps(e.detail) for e in refused)
