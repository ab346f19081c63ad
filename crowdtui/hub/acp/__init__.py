"""Structured turns over the Agent Client Protocol (``mode: acp``): the client side.

:mod:`~crowdtui.hub.acp.connection` (JSON-RPC lines, bounded), :mod:`~crowdtui.hub.acp.session`
(one agent's adapter in its container, crowdtui as its client),
:mod:`~crowdtui.hub.acp.in_container` (file and terminal requests served inside the agent's
container) and :mod:`~crowdtui.hub.acp.conversation` (what the console shows).

Not the ``agent-client-protocol`` Python SDK: its connection is built over a spawned
process's asyncio streams and validates every message against its own pydantic schema
version (0.12 against the adapter's 0.14 TypeScript SDK), while here the transport is a
multiplexed ``docker exec`` socket and every line is hostile input to bound ourselves; the
client side needs eleven methods, which fit in a few small modules.
"""
