"""The console's CPU cost: idle with N running agents, and while one agent floods its terminal.

    .venv/bin/python bench/tui.py [--agents 20] [--seconds 10] [--size 160x48]

Each phase runs the same N agent containers (the agent image, hardened as usual) in a
throw-away workspace, measured for ``--seconds``:

* idle,  no app   — the agents alone;
* idle,  app      — the console open in a real terminal (a tmux pane) over them;
* flood, no app   — one agent prints as fast as it can (``seq`` in a loop);
* flood, app      — the same, with the console showing that agent's live terminal;
* echo            — keystroke to echo through the real app: the console (in this
  process, headless, same workspace and agents) shows the terminal of an agent running
  ``cat`` in a raw TTY; a key is delivered to the app (the terminal widget has focus)
  and timed until the echoed character is in a line the widget rendered for Textual's
  compositor. Beside it, in blocks that alternate with it, the bare attach echo (a
  docker-py attach socket to the same container, as in bench/attach.py). p50/p99.

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
ECHO = "aab-echo"  # cat in a raw TTY: echoes every key
ECHO_CMD = "[sh, -c, 'stty raw -echo; exec cat']"
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


def pane_status(session: str) -> tuple[str, str]:
    """("1", exit status) once the console in the pane exited (the pane stays: remain-on-exit)."""
    out = subprocess.run(["tmux", "list-panes", "-t", session, "-F", "#{pane_dead} #{pane_dead_status}"],
                         capture_output=True, text=True).stdout.split()
    return (out[0], out[1] if len(out) > 1 else "") if out else ("", "")


def app_pid(session: str) -> int:
    shell_pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").split()[0])
    # the pane runs python directly (exec), so the pane's pid is the app's
    return shell_pid


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=20, help="running agents (default 20)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--size", default="160x48", help="terminal size for the console")
    ap.add_argument("--keys", type=int, default=300, help="keystrokes per side in the echo phase")
    ap.add_argument("--phases", default="cpu,echo", help="cpu, echo or both (default)")
    args = ap.parse_args()
    if args.agents < 2:
        raise SystemExit("bench: --agents must be at least 2 (the flood and the echo agent)")
    phases = set(args.phases.split(","))
    if not shutil.which("tmux"):
        raise SystemExit("bench: tmux is needed (apt-get install tmux)")
    cols, rows = (int(x) for x in args.size.lower().split("x"))

    client = connect()
    ensure_image(client, progress=lambda line: None)
    tmp = Path(tempfile.mkdtemp(prefix="crowdtui-bench-tui-"))
    ws, _ = init_workspace(tmp / "ws", sample=False)
    write_agent(ws, FLOOD, FLOOD_CMD)
    write_agent(ws, ECHO, ECHO_CMD)
    for i in range(args.agents - 2):
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

        if "cpu" in phases:
            cpu_phases(args, ws, session, dockerd, ids, flood_flag, results)
        if "echo" in phases:
            print("phase: echo", flush=True)
            echo = asyncio.run(echo_phase(ws, client, runtime, args.keys, cols, rows))
    finally:
        dead, status = pane_status(session)
        if dead == "1" and status not in ("0", ""):
            print(f"the console exited with status {status}; its last screen:", file=sys.stderr)
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
        from crowdtui.runtime.disk import release_all

        release_all(ws)  # the agents' home filesystems (loop mounts) go with the workspace
        shutil.rmtree(tmp, ignore_errors=True)

    ncpu = os.cpu_count() or 1
    print()
    if "cpu" in phases:
        report_cpu(args, results, cols, rows, ncpu)
    if "echo" in phases:
        (bare50, bare99), (app50, app99), n = echo
        print(f"keystroke -> echo, {args.agents} running agents ({n} keys per side, cat in a raw TTY, "
              f"alternating blocks)")
        print(f"  bare attach socket          p50 {bare50:7.2f} ms   p99 {bare99:7.2f} ms")
        print(f"  through the app (rendered)  p50 {app50:7.2f} ms   p99 {app99:7.2f} ms   "
              f"(goal p99 <= 15 ms)")
    return 0


def cpu_phases(args, ws, session, dockerd, ids, flood_flag, results) -> None:
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    print("phase: idle, no app", flush=True)
    results["idle, no app"] = measure(args.seconds, {"dockerd": dockerd}, ids)

    env = f"cd {REPO} && exec {sys.executable} -m crowdtui --workspace {ws.root}"
    tmux("new-session", "-d", "-s", session, "-x", str(cols), "-y", str(rows), env)
    tmux("set-option", "-t", session, "remain-on-exit", "on")  # a crash stays readable
    wait_pane(session, ECHO)
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
    while time.monotonic() < deadline and pane_status(session)[0] != "1":
        time.sleep(0.2)
    print("phase: flood, no app", flush=True)
    results["flood, no app"] = measure(args.seconds, {"dockerd": dockerd}, ids)
    flood_flag.unlink(missing_ok=True)
    results["screen"] = screen


async def echo_phase(ws, client, runtime, keys: int, cols: int, rows: int, block: int = 50):
    """Keystroke to echo through the real app, beside the bare attach echo (ms p50/p99 each)."""
    import random

    from textual import events

    from crowdtui.tui.app import CrowdApp
    from crowdtui.tui.widgets.agent_list import AgentList
    from crowdtui.tui.widgets.terminal_pane import TerminalPane

    sys.path.insert(0, str(REPO / "bench"))
    from attach import Bench, percentile

    info = {i.name: i for i in await runtime.list()}[ECHO]
    bare_bench = Bench(client, "")
    sock = bare_bench.bare_socket(info.container_id)
    app = CrowdApp(ws)
    bare: list[float] = []
    through: list[float] = []
    rng = random.Random(4)
    async with app.run_test(size=(cols, rows)) as pilot:
        async def until(cond, what: str, timeout: float = 60) -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: {what} did not happen in {timeout:.0f} s")
                await pilot.pause(0.05)

        await until(lambda: any(r.name == ECHO and r.running for r in app.rows), "the echo agent running")
        app._main.query_one(AgentList).select(ECHO)
        pane = app._main.query_one(TerminalPane)
        await until(lambda: pane.agent == ECHO and pane.terminal is not None
                    and getattr(pane.terminal, "_viewer", None) is not None, "its terminal attached")
        app.action_focus_terminal()
        term = pane.terminal
        await until(lambda: term.has_focus, "the terminal focused")
        waiting: dict = {}
        render_line = term.render_line

        def spy(y: int):
            strip = render_line(y)
            want = waiting.get("want")
            if want is not None and y == want[0] and strip.text[want[1]:want[1] + 1] == want[2]:
                fut = waiting.pop("fut")
                waiting.pop("want")
                if not fut.done():
                    fut.set_result(time.perf_counter())
            return strip

        term.render_line = spy  # what Textual's compositor paints comes through here
        loop = asyncio.get_running_loop()
        for start in range(0, keys, block):
            span = range(start, min(keys, start + block))
            sock.setblocking(False)  # drop the echoes of the app's keys
            try:
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                pass
            sock.setblocking(True)
            seen = term.bytes_received
            bare += Bench.bare_keys(sock, span)  # blocking, on purpose: nothing else runs
            # the app sees those echoes too: let it take them in before its own keys
            await until(lambda: term.bytes_received >= seen + len(span) and not term._pending
                        and term._flush_handle is None, "the bare echoes in the app")
            for i in span:
                x, y = term.emulator.cursor
                if x >= term.emulator.cols - 2:  # start a fresh line (not timed)
                    term.send(b"\r\n")
                    await until(lambda: term.emulator.cursor[0] == 0, "a new line")
                    await pilot.pause(0.05)
                    x, y = term.emulator.cursor
                await asyncio.sleep(rng.uniform(0.03, 0.07))  # typing, ~20 keys/s
                ch = chr(ord("a") + i % 26)
                fut = loop.create_future()
                waiting.update(fut=fut, want=(y, x, ch))
                t0 = time.perf_counter()
                app.post_message(events.Key(ch, ch))
                t1 = await asyncio.wait_for(fut, 10)
                through.append(t1 - t0)
    sock.close()

    def ms(values: list[float]) -> tuple[float, float]:
        return percentile(values, 50) * 1000, percentile(values, 99) * 1000

    return ms(bare), ms(through), len(through)


def report_cpu(args, results, cols, rows, ncpu) -> None:
    screen = results.pop("screen", "")
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


if __name__ == "__main__":
    sys.exit(main())
