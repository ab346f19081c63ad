"""Record the conformance streams (run by hand on a machine with tmux, vim, less, top).

    .venv/bin/python tests/terminal/record_streams.py [NAME ...]

Each scenario runs a real program inside `script -q -f` (which logs every byte the
program writes) as the only pane of a private tmux server at 80x24 with no status
line. Keys are sent with `tmux send-keys`, mouse clicks as SGR mouse reports. When
the scenario is done, while the program is still running, the screen is taken from
*tmux* — `capture-pane -e -p` (cells with their SGR attributes) and the cursor
from `display -p` — so the expected screen comes from an independent terminal
emulator, not from ours. The byte stream (`NAME.bin`, script's header and footer
stripped) and the expected screen (`NAME.json`) are written to streams/.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "streams"
ROWS, COLS = 24, 80
SOCK = "crowdtui-rec"
ENV = "env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 HOME=/tmp/crowdrec-home"


def tmux(*args: str) -> str:
    done = subprocess.run(["tmux", "-L", SOCK, *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tmux {args[:2]} failed: {done.stderr.strip()}")
    return done.stdout


def keys(*k: str, pause: float = 0.4) -> None:
    tmux("send-keys", "-t", "rec", *k)
    time.sleep(pause)


def literal(text: str, pause: float = 0.4) -> None:
    tmux("send-keys", "-t", "rec", "-l", text)
    time.sleep(pause)


def click(x: int, y: int) -> None:
    # What a terminal sends for a left click in SGR mode, straight to the program.
    literal(f"\x1b[<0;{x + 1};{y + 1}M\x1b[<0;{x + 1};{y + 1}m")


def sample_files(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    lines = ['"""Sample module for the vim recording."""', "", "import os", "", ""]
    for i in range(30):
        lines += [f"def function_{i}(value: int) -> int:", f'    """Return value plus {i}."""',
                  f"    return value + {i}  # comment {i}", ""]
    (root / "sample.py").write_text("\n".join(lines))
    text = []
    for i in range(400):
        text.append(f"{i:04d} the quick brown fox jumps over the lazy dog; tcp/{1000 + i} udp/{2000 + i}")
    (root / "services.txt").write_text("\n".join(text) + "\n")
    (root / "color dir").mkdir(exist_ok=True)
    for name in ["a.txt", "b.sh", "c.tar.gz", "d.py", "中文.txt"]:
        (root / "color dir" / name).write_text("x")
    os.chmod(root / "color dir" / "b.sh", 0o755)


def scenario_vim(root: Path) -> None:
    start(f"vim --clean {shlex.quote(str(root / 'sample.py'))}")
    time.sleep(1.0)
    keys(":set number", "Enter")
    keys(":syntax on", "Enter")
    keys("/function_3", "Enter")
    keys("j", "j", "A")
    literal(" # edited ✓ 中文")
    keys("Escape")
    keys(":vsplit", "Enter", pause=0.8)
    keys("C-w", "l", "G", pause=0.8)


def scenario_less(root: Path) -> None:
    start(f"less {shlex.quote(str(root / 'services.txt'))}")
    time.sleep(0.8)
    keys("Space")
    keys("Space")
    keys("/tcp/1100", "Enter")
    keys("k", "k")


def scenario_top(root: Path) -> None:
    start("top -d 30")
    time.sleep(2.0)


def scenario_shell(root: Path) -> None:
    start("bash --norc --noprofile -i", env_extra="PS1='\\[\\e[1;32m\\]rec\\[\\e[0m\\]:\\[\\e[34m\\]\\W\\[\\e[0m\\]\\$ '")
    time.sleep(0.6)
    literal(f"cd {shlex.quote(str(root / 'color dir'))}")
    keys("Enter")
    literal("ls --color=always -l --time-style=+ | cut -c1-10,30-")
    keys("Enter")
    literal("for i in $(seq 0 15); do printf '\\e[48;5;%dm %3d ' $((i*16+1)) $((i*16+1)); done; printf '\\e[0m\\n'")
    keys("Enter")
    literal("for i in $(seq 0 8 79); do printf '\\e[38;2;%d;%d;200m#' $((i*3)) $((255-i*3)); done; printf '\\e[0m\\n'")
    keys("Enter")
    literal("printf '\\e[1mbold\\e[22m \\e[3mital\\e[23m \\e[4munder\\e[24m \\e[7mrev\\e[27m \\e[9mstrike\\e[29m \\e[2mdim\\e[0m 中文 e\\xcc\\x81\\n'")
    keys("Enter")
    literal("seq 1 5 | tr '\\n' ' '; echo")
    keys("Enter")
    literal("echo partial line being typed")
    keys("C-a", "Right", "Right")


def scenario_altmouse(root: Path) -> None:
    start(f"python3 {shlex.quote(str(HERE / 'altmouse_demo.py'))}")
    time.sleep(1.0)
    literal("hi")
    click(10, 4)
    click(40, 12)


def scenario_altmouse_exit(root: Path) -> None:
    start(f"bash --norc --noprofile -c 'seq 1 30; python3 {shlex.quote(str(HERE / 'altmouse_demo.py'))} --leave; sleep 60'")
    time.sleep(1.0)
    click(5, 5)
    literal("q")
    time.sleep(0.5)


SCENARIOS = {
    "vim": scenario_vim,
    "less": scenario_less,
    "top": scenario_top,
    "shell": scenario_shell,
    "altmouse": scenario_altmouse,
    "altmouse_exit": scenario_altmouse_exit,
}

_log: Path | None = None


def start(command: str, env_extra: str = "") -> None:
    assert _log is not None
    inner = f"{ENV} {env_extra} {command}"
    tmux("new-session", "-d", "-s", "rec", "-x", str(COLS), "-y", str(ROWS),
         f"script -q -f -c {shlex.quote(inner)} {shlex.quote(str(_log))}")


def strip_script(raw: bytes) -> bytes:
    first = raw.find(b"\n")
    body = raw[first + 1 :] if raw.startswith(b"Script started") else raw
    end = body.rfind(b"\nScript done on ")
    return body[:end] if end >= 0 else body


def record(name: str, root: Path) -> None:
    global _log
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "tmux.conf"
        conf.write_text("set -g status off\nset -g escape-time 0\nset -g history-limit 0\n")
        _log = Path(tmp) / f"{name}.raw"
        subprocess.run(["tmux", "-L", SOCK, "kill-server"], capture_output=True)
        tmux("-f", str(conf), "start-server", ";", "source-file", str(conf))
        SCENARIOS[name](root)
        time.sleep(0.5)
        screen = tmux("capture-pane", "-e", "-p", "-N", "-t", "rec")
        cursor = tmux("display", "-p", "-t", "rec", "#{cursor_x} #{cursor_y} #{cursor_flag} #{alternate_on}").split()
        time.sleep(0.2)
        stream = strip_script(_log.read_bytes())
        subprocess.run(["tmux", "-L", SOCK, "kill-server"], capture_output=True)
    (OUT / f"{name}.bin").write_bytes(stream)
    expected = {
        "program": name,
        "rows": ROWS,
        "cols": COLS,
        "source": "tmux 3.3a capture-pane -e -p -N at the end of the recording",
        "cursor": {"x": int(cursor[0]), "y": int(cursor[1]), "visible": cursor[2] == "1"},
        "alternate": cursor[3] == "1",
        "capture": screen.split("\n")[:ROWS],
    }
    (OUT / f"{name}.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: {len(stream)} bytes, cursor {cursor}")


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    root = Path("/tmp/crowdrec-files")
    sample_files(root)
    Path("/tmp/crowdrec-home").mkdir(exist_ok=True)
    OUT.mkdir(exist_ok=True)
    for name in names:
        record(name, root)


if __name__ == "__main__":
    main()
