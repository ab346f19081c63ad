"""Embedded terminal throughput: our widget and emulator beside bare pyte and tmux.

    .venv/bin/python bench/terminal.py [--mb 50] [--storm-mb 5] [--rows 24 --cols 80]

Three workloads, each fed to every contender in the same run on the same bytes:

* flood  — a log flood (plain lines, coloured lines, 256/true colour, tabs,
  progress-bar carriage returns, wide characters), ``--mb`` megabytes;
* storm  — full-screen redraws (cursor home, every row rewritten in colour),
  the worst case: nothing scrolls off, so every byte must be interpreted;
* echo   — an interactive echo, one character at a time: in the widget, the time
  from the echo arriving to the repaint request (p50/p99, typing ~20 keys/s);
  and per keystroke, our emulator's feed beside bare pyte's, plus the cost of
  rebuilding the changed line for Textual. (tmux is not timed here: its echo
  cannot be observed without a client, whose own costs would dominate.)

Contenders: the Terminal widget inside a real headless Textual app (output
arrives in 64 KiB reads as from a PTY, the widget batches and repaints at most
30 times a second), our Emulator alone, bare pyte (Screen + ByteStream) and tmux
(a detached session running ``cat`` on the same bytes; its time is parse time,
no client draws). After the flood the widget's screen is compared cell by cell
with bare pyte's; a mismatch is reported and makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyte  # noqa: E402

from crowdtui.terminal import Emulator  # noqa: E402

CHUNK = 65536


def log_flood(mb: float, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    i = 0
    target = int(mb * 1_000_000)
    while size < target:
        r = rng.random()
        if r < 0.3:
            line = f"\x1b[3{i % 8}m{i:08d} INFO\x1b[0m request served in {rng.randint(1, 999)} ms path=/api/v1/items/{i}\r\n"
        elif r < 0.4:
            line = f"\x1b[38;5;{i % 256}m{i}\t\x1b[1;48;2;{i % 256};20;30mWARN\x1b[0m\x1b[K queue depth {i % 1000}\r\n"
        elif r < 0.45:
            line = f"progress {i % 100}%\rprogress {(i + 1) % 100}%\r\n"
        elif r < 0.5:
            line = f"wide 中文字符 {i} ok\r\n"
        else:
            line = f"{i}\r\n"
        out.append(line)
        size += len(line.encode())
        i += 1
    return "".join(out).encode()


def redraw_storm(mb: float, rows: int, cols: int) -> bytes:
    out: list[str] = []
    size = 0
    frame = 0
    target = int(mb * 1_000_000)
    while size < target:
        parts = ["\x1b[H"]
        for y in range(rows):
            text = f"frame {frame:06d} row {y:02d} " + "=" * (cols - 24)
            parts.append(f"\x1b[{y + 1};1H\x1b[3{(y + frame) % 8};4{(y * 3 + frame) % 8}m{text[:cols - 1]}\x1b[0m\x1b[K")
        s = "".join(parts)
        out.append(s)
        size += len(s.encode())
        frame += 1
    return "".join(out).encode()


def run_pyte(data: bytes, rows: int, cols: int) -> tuple[float, pyte.Screen]:
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    t = time.perf_counter()
    for k in range(0, len(data), CHUNK):
        stream.feed(data[k : k + CHUNK])
    return time.perf_counter() - t, screen


def run_emulator(data: bytes, rows: int, cols: int) -> tuple[float, Emulator]:
    emu = Emulator(rows, cols)
    t = time.perf_counter()
    for k in range(0, len(data), CHUNK):
        emu.feed(data[k : k + CHUNK])
    return time.perf_counter() - t, emu


def run_widget(data: bytes, rows: int, cols: int) -> tuple[float, Emulator, int]:
    from textual.app import App

    from crowdtui.tui.widgets.terminal import Terminal

    result: dict = {}

    class BenchApp(App):
        CSS = "Screen { layout: vertical; } Terminal { height: 1fr; }"

        def compose(self):
            yield Terminal(None, label="bench")

    async def main() -> None:
        app = BenchApp()
        async with app.run_test(size=(cols + 2, rows + 2)) as pilot:
            term = app.query_one(Terminal)
            await pilot.pause()
            assert (term.emulator.rows, term.emulator.cols) == (rows, cols), (term.emulator.rows, term.emulator.cols)
            t = time.perf_counter()
            for k in range(0, len(data), CHUNK):
                term._on_output(data[k : k + CHUNK])
                await asyncio.sleep(0)  # a PTY read per loop turn, as in real life
            while term._pending or term._flush_handle is not None:
                await asyncio.sleep(0.001)
            await pilot.pause()  # the repaint
            result["seconds"] = time.perf_counter() - t
            result["emulator"] = term.emulator
            result["flushes"] = term.repaints

    asyncio.run(main())
    return result["seconds"], result["emulator"], result["flushes"]


def widget_echo_latency(rows: int, cols: int, n: int = 200) -> tuple[float, float]:
    """Milliseconds from a keystroke's echo arriving to the widget asking Textual to
    repaint the line (p50, p99), typing at ~20 keys/s; bounded by the 30/s cap."""
    from textual.app import App

    from crowdtui.tui.widgets.terminal import Terminal

    out: list[float] = []

    class BenchApp(App):
        def compose(self):
            yield Terminal(None, label="bench")

    async def main() -> None:
        app = BenchApp()
        async with app.run_test(size=(cols + 2, rows + 2)) as pilot:
            term = app.query_one(Terminal)
            await pilot.pause()
            rng = random.Random(3)
            for i in range(n):
                await asyncio.sleep(rng.uniform(0.03, 0.07))
                before = term.repaints
                t = time.perf_counter()
                term._on_output(b"x" if i % cols else b"\r\nx")
                while term.repaints == before:
                    await asyncio.sleep(0)
                out.append((time.perf_counter() - t) * 1000)

    asyncio.run(main())
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99) - 1]


def run_tmux(data: bytes, rows: int, cols: int) -> float | None:
    if shutil.which("tmux") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.bin"
        path.write_bytes(data)
        sock = f"crowdtui-bench-{os.getpid()}"
        base = ["tmux", "-L", sock, "-f", "/dev/null"]
        subprocess.run(base + ["new-session", "-d", "-s", "b", "-x", str(cols), "-y", str(rows), "sleep 600"], check=True)
        try:
            subprocess.run(base + ["set", "-g", "status", "off"], check=True)
            t = time.perf_counter()
            subprocess.run(
                base + ["new-window", "-d", "-t", "b:", f"stty raw; cat {path}; tmux -L {sock} wait-for -S done; sleep 600"],
                check=True,
            )
            subprocess.run(base + ["wait-for", "done"], check=True, timeout=600)
            return time.perf_counter() - t
        finally:
            subprocess.run(base + ["kill-server"], capture_output=True)


def same_screen(emu: Emulator, screen: pyte.Screen) -> int:
    """Number of cells that differ from bare pyte's screen (pyte's fields only)."""
    bad = 0
    for y in range(screen.lines):
        for x in range(screen.columns):
            if tuple(emu.screen.buffer[y][x])[:9] != tuple(screen.buffer[y][x]):
                bad += 1
    if emu.cursor != (screen.cursor.x, screen.cursor.y):
        bad += 1
    return bad


def echo(rows: int, cols: int, n: int = 3000) -> tuple[float, float, float]:
    """Microseconds per keystroke echoed: our emulator's feed, bare pyte's feed, and
    the widget's cost to rebuild the changed line (render_line's Strip)."""
    from crowdtui.tui.widgets.terminal import Terminal

    keys = [(bytes([ord("a") + (i % 26)]) if i % cols else b"\r\n" + bytes([ord("a") + (i % 26)])) for i in range(n)]
    term = Terminal(None)
    term.emulator.resize(rows, cols)
    emu = term.emulator
    t = time.perf_counter()
    for k in keys:
        emu.feed(k)
    ours = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for i in range(n):
        term._strip(emu.line(i % rows), cols, i % cols)
    render = (time.perf_counter() - t) / n * 1e6
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    t = time.perf_counter()
    for k in keys:
        stream.feed(k)
    bare = (time.perf_counter() - t) / n * 1e6
    return ours, bare, render


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=50.0, help="size of the log flood")
    ap.add_argument("--storm-mb", type=float, default=5.0, help="size of the redraw storm")
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--cols", type=int, default=80)
    args = ap.parse_args()
    rows, cols = args.rows, args.cols
    status = 0
    print(f"terminal {cols}x{rows}, python {sys.version.split()[0]}, pyte {pyte.__version__ if hasattr(pyte, '__version__') else '0.8.2'}")

    for name, data in [("flood", log_flood(args.mb)), ("storm", redraw_storm(args.storm_mb, rows, cols))]:
        mb = len(data) / 1e6
        print(f"\n{name}: {mb:.1f} MB")
        t_widget, w_emu, flushes = run_widget(data, rows, cols)
        t_emu, emu = run_emulator(data, rows, cols)
        t_pyte, screen = run_pyte(data, rows, cols)
        t_tmux = run_tmux(data, rows, cols)
        print(f"  widget    {mb / t_widget:8.2f} MB/s  ({t_widget:6.2f} s, {flushes} repaints)")
        print(f"  emulator  {mb / t_emu:8.2f} MB/s  ({t_emu:6.2f} s)")
        print(f"  bare pyte {mb / t_pyte:8.2f} MB/s  ({t_pyte:6.2f} s)")
        if t_tmux:
            print(f"  tmux      {mb / t_tmux:8.2f} MB/s  ({t_tmux:6.2f} s)")
        print(f"  ratio widget/pyte {t_pyte / t_widget:6.2f}x   emulator/pyte {t_pyte / t_emu:6.2f}x", end="")
        print(f"   widget/tmux {t_tmux / t_widget:6.2f}x" if t_tmux else "")
        diff_w, diff_e = same_screen(w_emu, screen), same_screen(emu, screen)
        print(f"  final screen vs bare pyte: widget {'identical' if not diff_w else f'{diff_w} cells differ'}, "
              f"emulator {'identical' if not diff_e else f'{diff_e} cells differ'}")
        if diff_w or diff_e:
            status = 1

    p50, p99 = widget_echo_latency(rows, cols)
    print(f"\necho in the widget: {p50:.2f} ms p50, {p99:.2f} ms p99 from output to repaint request")
    ours, bare, render = echo(rows, cols)
    print(f"echo: emulator {ours:.1f} us/keystroke, bare pyte {bare:.1f} us (ratio {bare / ours:.2f}x); "
          f"rebuilding the changed line for Textual {render:.1f} us")
    return status


if __name__ == "__main__":
    sys.exit(main())
