#!/usr/bin/env python3
"""A stand-in ACP agent that replays a recording of a real adapter run (tests only).

    python3 replay_agent.py RECORDING.jsonl

A recording is what :class:`crowdtui.hub.acp.session.AcpAgent` (``record=PATH``) wrote while
it drove the real adapter: one JSON object per line, ``{"dir": "in" | "out", "line": ...}``,
``in`` what the agent sent, ``out`` what crowdtui sent. Replaying walks the recording in
order on stdio: for an ``out`` line it reads the client's next line and checks it is the same
kind of message (the same method, or an answer); for an ``in`` line it prints it, with the
id of an answer rewritten to the id the client used for the matching request (the client's
ids need not be the recorded ones). So a console test sees exactly the updates, tool calls,
permission and file requests the real adapter sent, in the same order, with no model and no
network. A client that strays from the recording gets a JSON-RPC error and the replay ends
(exit 3), which the test sees as a closed connection.

Standard library only: it runs inside any agent image (python3).
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        script = [json.loads(line) for line in fh if line.strip()]
    ids: dict[object, object] = {}  # recorded client request id -> the live client's id
    out = sys.stdout
    for step in script:
        message = json.loads(step["line"])
        if step["dir"] == "out":
            live_line = sys.stdin.readline()
            if not live_line:
                return 0  # the client went away
            live = json.loads(live_line)
            if message.get("method") != live.get("method"):
                error = {"jsonrpc": "2.0", "id": live.get("id"), "error": {
                    "code": -32600, "message": f"replay expected {message.get('method') or 'an answer'}, "
                                               f"got {live.get('method') or 'an answer'}"}}
                out.write(json.dumps(error) + "\n")
                out.flush()
                return 3
            if "method" in message and "id" in message:
                ids[message["id"]] = live["id"]
            continue
        if "method" not in message and message.get("id") in ids:
            message["id"] = ids.pop(message["id"])
        out.write(json.dumps(message, ensure_ascii=False) + "\n")
        out.flush()
    # the recording is over: stay up (as an idle agent does) until the client closes
    while sys.stdin.readline():
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
