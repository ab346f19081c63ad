"""The disk is bounded: an agent's home is its own filesystem of `resources.disk` bytes.

From inside a real container an agent writes as fast as it can into its home and tries
its IPC folder; the home stops at the limit (ENOSPC inside, the image file on the host
never larger than the limit), the IPC folder takes nothing, other agents' homes and the
host disk are untouched, and the data survives a restart.
"""

from __future__ import annotations

import os

import pytest

from crowdtui.roster import AgentDef, Resources
from crowdtui.runtime import disk

pytestmark = pytest.mark.docker

LIMIT_MB = 64


def definition(ws, name, size=f"{LIMIT_MB}m"):
    return AgentDef(name=name, file=ws.agents_dir / name / "AGENT.md", rel_path=name, tier=0,
                    command=("sleep", "infinity"), resources=Resources(disk=size))


def sh(container, script: str) -> tuple[int, str]:
    code, out = container.exec_run(["bash", "-c", script], user="1000:1000")
    return code, out.decode(errors="replace")


@pytest.fixture
def runtime(workspace, agent_image):
    from crowdtui.runtime.containers import Runtime

    assert os.geteuid() == 0, "disk limits need root (as in CI)"
    return Runtime(workspace)


async def test_home_stops_growing_at_the_limit_and_ipc_takes_nothing(runtime, workspace):
    await runtime.start(definition(workspace, "hog"))
    await runtime.start(definition(workspace, "bystander", "128m"))
    hog = await runtime.container("hog")
    code, out = sh(hog, "df -m /home/agent | tail -1; "
                        "dd if=/dev/zero of=/home/agent/fill bs=1M count=500 2>&1; "
                        "echo dd=$?; (echo x > /run/crowd/note) 2>&1; echo ipc=$?")
    total_mb = int(out.splitlines()[0].split()[1])
    assert LIMIT_MB * 0.8 <= total_mb <= LIMIT_MB, out  # df inside shows the agent's own limit
    assert "No space left on device" in out and "dd=1" in out and "ipc=1" in out, out
    image = disk.image_path(workspace, "hog")
    allocated = os.stat(image).st_blocks * 512
    assert allocated <= LIMIT_MB * 1024**2, f"image holds {allocated} bytes"
    used, total = disk.usage(workspace, "hog")
    assert used >= total * 0.9  # full, and only its own filesystem
    assert not (workspace.ipc_dir("hog") / "note").exists()
    assert disk.usage(workspace, "bystander")[0] < 16 * 1024**2  # another agent's home is untouched

    code, out = sh(hog, "grep ' /home/agent ' /proc/self/mountinfo")
    assert str(workspace.root) not in out, out  # the home's host path is not shown inside

    # the data is the agent's: kept across a restart (and a remount)
    sh(hog, "rm -f /home/agent/fill; echo kept > /home/agent/diary")
    await runtime.remove("hog")
    assert disk.release_home_disk(workspace, "hog")
    await runtime.start(definition(workspace, "hog"))
    code, out = sh(await runtime.container("hog"), "cat /home/agent/diary")
    assert out.strip() == "kept"


async def test_a_home_made_before_limits_moves_into_its_filesystem(runtime, workspace):
    home = workspace.home_dir("old")
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "a.txt").write_text("from before\n")
    (home / ".mcp.json").write_text('{"mcpServers": {}}')
    await runtime.start(definition(workspace, "old"))
    code, out = sh(await runtime.container("old"), "cat /home/agent/notes/a.txt; ls -A /home/agent")
    assert "from before" in out and ".mcp.json" in out and "lost+found" not in out
    assert disk.usage(workspace, "old") is not None


async def test_disk_none_is_a_plain_folder_and_bad_sizes_are_clear(runtime, workspace):
    from crowdtui.roster import load_roster

    await runtime.start(definition(workspace, "free", "none"))
    assert disk.usage(workspace, "free") is None and not disk.image_path(workspace, "free").exists()
    folder = workspace.agents_dir / "bad"
    folder.mkdir(parents=True)
    (folder / "AGENT.md").write_text("---\nname: bad\ndescription: x\nresources: {disk: 1m}\n---\nx\n")
    problems = [str(p) for p in load_roster(workspace).problems]
    assert any("resources.disk" in p and "32m" in p for p in problems), problems
