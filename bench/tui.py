"""The console's CPU cost: idle with N running agents, and while one agent floods its terminal.

    .venv/bin/python bench/tui.py [--agents 20] [--seconds 10] [--size 160x48]

Each phase runs the same N agent containers (the agent image, hardened as usual) in a
throw-away workspace, measured for ``--seconds``:

* idle,  no app   — the agents alone;
* idle,  app      — the console open in a real terminal (a tmux pane) over them;
* flood, no app   — one agent prints as fast as it can (``seq`` in a loop);
* flood, app      — the same, with the console showing that agent's live terminal.

For each phase it prints the console process's CPU (percent of one core, from
/proc/PID/stat), dockerd's, and the whole machine's (from /proc/stat), then the
app's share beside the no-app reference of the same run. Containers, the tmux
session and the workspace are removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crowdtui.roster import load_roster  # noqa: E402
from crowdtui.runtime.containers import Runtime  # noqa: E402
from crowdtui.runtime.engine import connect  # noqa: E402
from crowdtui.runtime.image import ensure_image  # noqa: E402
from crowdtui.workspace import init_workspace  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
FLOOD = "aaa-flood"  # sorts first in the list, so one `j` selects it
FLOOD_CMD = ("[sh, -c, 'while :; do if [ -e /run/crowd/flood ]; then seq 1 200000; "
             "else sleep 0.2; fi; done']")
IDLE_CMD = "[sh, -c, 'echo ready; exec sleep 100000']"


def write_agent(ws, name: str, command: str) -> None:
    folder = ws.agents_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "AGENT.md").write_text(
        f"---\nname: {name}\ndescription: bench agent\ncommand: {command}\n"
        "launch: manual\nresources:\n  cpus: 0.5\n  memory: 64m\n  pids: 32\n---\n# bench\n")


def proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        raise SystemExit(f"bench: process {pid} is gone (the console exited; see its last screen above)") from None
    return int(fields[11]) + int(fields[12])  # utime + stime (all threads)


def host_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def pid_of(name: str) -> int | None:
    out = subprocess.run(["pidof", name], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def container_ns(container_ids: list[str]) -> int:
    """CPU time (ns) the containers used so far (cgroup v1 cpuacct, else v2 cpu.stat)."""
    total = 0
    for cid in container_ids:
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
        try:
            if v1.exists():
                total += int(v1.read_text())
            elif v2.exists():
                usage = dict(line.split() for line in v2.read_text().splitlines())
                total += int(usage["usage_usec"]) * 1000
        except (OSError, ValueError, KeyError):
            pass
    return total


def measure(seconds: float, pids: dict[str, int | None], containers: list[str]) -> dict[str, float]:
    """CPU percent of one core for each pid and for the agents' containers together, and of
    the whole machine (all cores = 100 * n; includes whatever else the machine runs)."""
    start = {k: proc_ticks(p) for k, p in pids.items() if p}
    agents0 = container_ns(containers)
    busy0, total0 = host_ticks()
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    out = {k: 100.0 * (proc_ticks(p) - start[k]) / TICKS / elapsed for k, p in pids.items() if p}
    out["agents"] = 100.0 * (container_ns(containers) - agents0) / 1e9 / elapsed
    busy1, total1 = host_ticks()
    ncpu = os.cpu_count() or 1
    out["machine"] = 100.0 * ncpu * (busy1 - busy0) / max(1, total1 - total0)
    return out


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def wait_pane(session: str, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise SystemExit(f"bench: the console never showed {text!r}; last screen:\n{screen}")


def app_pid(session: str) -> int:
    shell_pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0])
    # the pane runs python directly (exec), so the pane's pid is the app's
    return shell_pid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20, help="running agents (default 20)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--size", default="160x48", help="terminal size for the console")
    args = ap.parse_args()
    if args.agents < 1:
        raise SystemExit("bench: --agents must be at least 1")
    if not shutil.which("tmux"):
        raise SystemExit("bench: tmux is needed (apt-get install tmux)")
    cols, rows = (int(x) for x in args.size.lower().split("x"))

    client = connect()
    ensure_image(client, progress=lambda line: None)
    tmp = Path(tempfile.mkdtemp(prefix="crowdtui-bench-tui-"))
    ws, _ = init_workspace(tmp / "ws", sample=False)
    write_agent(ws, FLOOD, FLOOD_CMD)
    for i in range(args.agents - 1):
        write_agent(ws, f"idle-{i:02d}", IDLE_CMD)
    roster = load_roster(ws)
    if roster.problems:
        raise SystemExit(f"bench: roster problems: {roster.problems}")
    runtime = Runtime(ws, client)
    session = f"crowdtui-bench-{os.getpid()}"
    flood_flag = ws.ipc_dir(FLOOD) / "flood"
    results: dict[str, dict[str, float]] = {}
    try:
        print(f"starting {args.agents} agents …", flush=True)
        t0 = time.monotonic()

        async def start_all():
            for d in roster.agents.values():
                await runtime.start(d)

        asyncio.run(start_all())
        print(f"  started in {time.monotonic() - t0:.1f} s", flush=True)
        time.sleep(2)
        dockerd = pid_of("dockerd")
        ids = [info.container_id for info in runtime.list_sync()]

        print("phase: idle, no app", flush=True)
        results["idle, no app"] = measure(args.seconds, {"dockerd": dockerd}, ids)

        env = f"cd {REPO} && exec {sys.executable} -m crowdtui --workspace {ws.root}"
        tmux("new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows), env)
        tmux("set-option", "-t", session, "remain-on-exit", "on")  # a crash stays readable
        wait_pane(session, "idle-00")
        wait_pane(session, f"{args.agents}/{args.agents} running")
        app = app_pid(session)
        tmux("send-keys", "-t", session, "j")  # select the flood agent: its terminal attaches
        time.sleep(3)
        print("phase: idle, app", flush=True)
        results["idle, app"] = measure(args.seconds, {"app": app, "dockerd": dockerd}, ids)

        flood_flag.touch()
        time.sleep(1)
        print("phase: flood, app", flush=True)
        results["flood, app"] = measure(args.seconds, {"app": app, "dockerd": dockerd}, ids)
        screen = tmux("capture-pane", "-p", "-t", session)
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and subprocess.run(
                ["tmux", "has-session", "-t", session], capture_output=True).returncode == 0:
            time.sleep(0.2)
        print("phase: flood, no app", flush=True)
        results["flood, no app"] = measure(args.seconds, {"dockerd": dockerd}, ids)
        flood_flag.unlink(missing_ok=True)
    finally:
        dead = subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_dead} #{pane_dead_status}"],
                              capture_output=True, text=True).stdout.strip()
        if dead.startswith("1") and dead != "1 0":
            print("the console exited; its last screen:", file=sys.stderr)
            print(subprocess.run(["tmux", "capture-pane", "-p", "-S", "-60", "-t", session],
                                 capture_output=True, text=True).stdout, file=sys.stderr)
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

        async def remove_all():
            for name in roster.agents:
                try:
                    await runtime.remove(name)
                except Exception:
                    pass

        asyncio.run(remove_all())
        client.close()
        shutil.rmtree(tmp, ignore_errors=True)

    ncpu = os.cpu_count() or 1
    print()
    print(f"console CPU, {args.agents} running agents, {cols}x{rows}, {args.seconds:.0f} s per phase, "
          f"{ncpu} cores (percent of one core; machine: all cores)")
    print(f"{'phase':<16}{'app':>8}{'agents':>9}{'dockerd':>10}{'machine':>10}")
    for phase in ("idle, no app", "idle, app", "flood, no app", "flood, app"):
        r = results.get(phase, {})
        app_cpu = f"{r['app']:.1f}" if "app" in r else "–"
        print(f"{phase:<16}{app_cpu:>8}{r.get('agents', 0):>9.1f}{r.get('dockerd', 0):>10.1f}"
              f"{r.get('machine', 0):>10.1f}")
    for kind in ("idle", "flood"):
        with_app, without = results[f"{kind}, app"], results[f"{kind}, no app"]
        ref = without["agents"] + without["dockerd"]
        ratio = f"{with_app['app'] / ref:.2f}x" if ref > 0.05 else "n/a"
        print(f"{kind}: console {with_app['app']:.1f}% of a core beside agents+dockerd "
              f"{ref:.1f}% without it (ratio {ratio}); with it agents+dockerd "
              f"{with_app['agents'] + with_app['dockerd']:.1f}%")
    if "flood" not in screen and not any(ch.isdigit() for ch in screen):
        print("warning: the flooding terminal did not show on screen", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
