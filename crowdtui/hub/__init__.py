"""The hub: one MCP server, one door (unix socket) per agent, grants by tier.

Public API: ``Hub`` (crowdtui.hub.hub), ``Grants`` (crowdtui.hub.grants),
``unix_client`` (an MCP client transport over a door, crowdtui.hub.unix_transport).
Import the submodules; this package imports nothing heavy on its own.
"""
