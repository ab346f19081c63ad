"""The scripted agent (``runner: script``, the default): the image's own ``crowd-agent``.

It reads ``~/CLAUDE.md`` and reaches the hub through ``~/.mcp.json`` (written by the hub
when it opens the agent's door); it needs no secret, no egress and no packages.
"""

from __future__ import annotations

from crowdtui.runners.base import Runner


class ScriptRunner(Runner):
    name = "script"


RUNNER = ScriptRunner()
