"""A door that opens or closes reaches the relays at once: the hub tells them (``RelayDoor.refresh``)
instead of leaving it to their next poll, so a remote agent's socket appears as soon as its door opens.

The poll is set far beyond the test's bound: only the hub's own word can bring the SERVE lists.
"""

from __future__ import annotations

import json

from crowdtui.hub import relay_wire as wire
from crowdtui.hub.relay_credentials import issue_engine_credential

from .conftest import ENGINE
from .test_relay_trust import HandRelay


async def served(relay: HandRelay, timeout: float) -> dict:
    kind, _, payload = await relay.expect(wire.SERVE, timeout)
    return json.loads(payload)["agents"]


async def test_a_door_opening_or_closing_reaches_the_relay_without_waiting_for_its_poll(local_hub, workspace,
                                                                                       tmp_path):
    hub = local_hub
    hub.relay.poll = 600.0  # the link's own poll never fires within this test
    relay = await HandRelay.connect(hub.relay.address, issue_engine_credential(workspace, ENGINE), tmp_path / "c")
    try:
        await relay.send(wire.control(wire.HELLO, engine=ENGINE, version=1))
        await relay.expect(wire.WELCOME)
        assert sorted(await served(relay, 10)) == ["alpha", "beta"]
        await hub.close_door("alpha")  # alpha stopped: its socket goes
        assert sorted(await served(relay, 5)) == ["beta"]
        await hub.open_door("alpha")  # alpha started again: its socket comes back at once
        assert sorted(await served(relay, 5)) == ["alpha", "beta"]
    finally:
        relay.close()
