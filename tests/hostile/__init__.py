"""The hostile-input suite: malformed and hostile input at every door, fixed seed, bounded.

Doors and where they are covered:
  MCP tool arguments (every tool's input schema, over an agent's real socket)  test_mcp_tools.py
  raw JSON-RPC frames on an agent's MCP socket                                 test_mcp_frames.py
  grant bypasses (coerced values, lists, unknown keys) and audit dodges       test_grant_bypass.py
  agent definition files (AGENT.md)                                           test_agent_files.py
  definitions an agent spawns (spawn_agent over its socket)                    test_spawn_definitions.py
  channel bodies, registrations and tokens (engine HTTP API on 127.0.0.1)     test_channel_bodies.py
  network input at the channels' parsers (Telegram updates, Matrix events, raw mails)
    -- and end to end through each channel process: tests/channels    test_network_messages.py
  CLI names and ids (subprocess crowdtui)                                     test_cli_args.py
  document ids, titles and types (the store)                                  test_documents.py
  self-approval: a tier-2 agent making its rewrite of the operator's SOP effective  test_self_approval.py
  egress proxy requests (an agent's egress.sock)                              test_egress_door.py
  the agent's home (/home/agent) and IPC folder (/run/crowd): links, FIFOs and
    folders it plants where crowdtui reads, writes or binds (crowdtui.agent_folder)
                                            test_agent_folders.py, test_agent_folder_unit.py
  the disk through the agent's home and IPC folder (filling them)            test_disk_limits.py
  chat route takeover by a tier-0 agent (raw JSON-RPC from its container, real serve)  test_route_takeover.py
  quotas: broadcast floods, task floods, document versions (an agent's socket) test_quotas.py
  relay links from other engines (TLS credentials, frames, stream ids, agents not placed on the
    relay's engine, random and mangled frames): tests/relay  test_relay_trust.py, test_relay_bounds.py,
                                                                              test_relay_fuzz.py
  resource exhaustion of the hub (connections, unread answers, half lines, fds)  test_hub_exhaustion.py
  terminal byte streams: tests/terminal/test_hostile.py (random bytes and escape sequences, split
  anywhere, through the emulator and the widget) -- reused there, not duplicated here.
"""
