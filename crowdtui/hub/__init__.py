"""The hub: one MCP server, one door (unix socket) per agent, grants by tier.

- ``hub.Hub`` — start/stop, ``open_door``/``close_door``, ``open_running_doors``,
  ``follow_registry``, ``run_policies`` (announcements and launch/shutdown policies),
  streamable HTTP with bearer tokens.
- ``grants.Grants`` — tier defaults narrowed by ``[!]tool[(param=glob,...)]`` rules.
- ``tokens`` — issue/revoke/list bearer tokens (stored hashed).
- ``unix_transport.unix_client`` — an MCP client transport over a door.
- ``announce.Announcer``, ``launch.LaunchPolicy`` — the policy components.

Import the submodules; this package imports nothing on its own.
"""
