"""The Claude Code scenario of record_streams.py: the real ``claude`` binary from the
claude-code runner image in the recording pane, its model the Anthropic stand-in."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
CLAUDE_ANSWER = ("Here is **one** answer, with `code` and a list:\n\n- first point\n- second point, long "
                 "enough to wrap when the terminal is narrower than it\n\n```python\nprint('hello')\n```\n"
                 "That is all.")
CLAUDE_CONTAINER = "crowdtui-rec-claude-code"


def claude_code(r) -> None:
    """The real `claude` binary from the claude-code runner image, its terminal the pane,
    its model the Anthropic stand-in on the host (host network, nothing else reachable
    that matters): the prompt, a turn with markdown, a resize, typing after it."""
    sys.path.insert(0, str(REPO))
    from crowdtui.runners import runner_named
    from crowdtui.runtime.runner_image import runner_image_tag
    from tests.standins.anthropic import AnthropicStandIn, Turn

    image = runner_image_tag(runner_named("claude-code"), {})
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise RuntimeError(f"{image} is not built: `crowdtui image build --runner claude-code`")
    standin = AnthropicStandIn([Turn(when="tell me", text=CLAUDE_ANSWER)], host="127.0.0.1").start()
    r.cleanups.append(standin.stop)
    home = Path(tempfile.mkdtemp(prefix="crowdrec-claude-"))
    r.cleanups.append(lambda: subprocess.run(["rm", "-rf", str(home)]))
    (home / "home" / ".claude").mkdir(parents=True)
    (home / "workspace").mkdir()
    # What the runner's seed_home writes, less the crowd MCP server (no hub here).
    (home / "home" / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "theme": "dark",
        "projects": {"/workspace": {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}}}))
    (home / "home" / ".claude" / "settings.json").write_text(json.dumps({"apiKeyHelper": "printenv CROWD_ANTHROPIC_API_KEY"}))
    subprocess.run(["chown", "-R", "1000:1000", str(home)], check=True)
    subprocess.run(["docker", "rm", "-f", CLAUDE_CONTAINER], capture_output=True)
    r.cleanups.append(lambda: subprocess.run(["docker", "rm", "-f", CLAUDE_CONTAINER], capture_output=True))
    env = {"ANTHROPIC_API_KEY": "sk-ant-recording-" + "0" * 24, "ANTHROPIC_BASE_URL": standin.url,
           "TERM": "xterm-256color", "LANG": "C.UTF-8", "NO_PROXY": "*", "HTTP_PROXY": "", "HTTPS_PROXY": "",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    command = ["docker", "run", "--rm", "-it", "--name", CLAUDE_CONTAINER, "--label", "crowdtui.recording=1",
               "--network", "host", "--user", "1000:1000", "-v", f"{home / 'home'}:/home/agent",
               "-v", f"{home / 'workspace'}:/workspace", "-w", "/workspace"]
    command += [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    command += [image, "crowd-claude", "--model", "claude-sonnet-4-5"]
    r.start(" ".join(map(shlex.quote, command)), wait=8.0)
    r.literal("tell me something about this terminal", pause=0.6)
    r.keys("Enter", pause=4.0)
    r.resize(24, 80)
    r.literal("typed after the resize", pause=1.0)
