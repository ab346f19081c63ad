"""The hostile-input suite: malformed and hostile input at every door, fixed seed, bounded.

Doors and where they are covered:
  MCP tool arguments (every tool's input schema, over an agent's real socket)  test_mcp_tools.py
  raw JSON-RPC frames on an agent's MCP socket                                 test_mcp_frames.py
  agent definition files (AGENT.md)                                           test_agent_files.py
  channel bodies, registrations and tokens (engine HTTP API on 127.0.0.1)     test_channel_bodies.py
  CLI names and ids (subprocess crowdtui)                                     test_cli_args.py
  document ids, titles and types (the store)                                  test_documents.py
  egress proxy requests (an agent's egress.sock)                              test_egress_door.py
  resource exhaustion of the hub (connections, unread answers, half lines, fds)  test_hub_exhaustion.py
  terminal byte streams: tests/terminal/test_hostile.py (random bytes and escape sequences, split
  anywhere, through the emulator and the widget) -- reused there, not duplicated here.
"""
