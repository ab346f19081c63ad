"""Record the conformance corpus (run by hand on a machine with tmux and the programs).

    .venv/bin/python tests/terminal/record_streams.py [NAME ...]

Each scenario runs a real program inside `script -q -f` (which logs every byte the
program writes) as the only pane of a private tmux server with no status line, at
the scenario's size. Keys go in with `tmux send-keys`, mouse clicks as SGR mouse
reports. At each checkpoint — before every resize and at the end, while the program
still runs and once its output has gone quiet — the screen is taken from *tmux*:
`capture-pane -e -p -N` (cells with their SGR attributes; cells drawn from the DEC
line-drawing set come bracketed in SO/SI) and the cursor from `display -p`. So the
expected screens come from an independent terminal emulator, never from ours.

Written to streams/: `NAME.bin.gz` (the program's bytes, script's header and footer
stripped) and `NAME.json`: the program, its first size and a list of steps, each at a
byte offset of the stream — `{"at": N, "resize": {"rows", "cols"}}` or
`{"at": N, "screen": {"rows", "cols", "cursor", "alternate", "capture"}}`.
Programs used: tmux, vim, less, man, top, htop, nano, mc, dialog, bash, python3, git, and
Claude Code (the claude-code runner image, `crowdtui image build --runner claude-code`, run
with `docker run` against tests/standins/anthropic.py). Every process a recording started
is ended by its id afterwards, the container by its name.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record_claude  # beside this file (run as a script)
import record_processes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = HERE / "streams"
SOCK = "crowdtui-rec"
CONF = Path("/tmp/crowdrec-tmux.conf")  # passed on every call: whichever starts the server uses it
FILES = Path("/tmp/crowdrec-files")
ENV = "env -u TMUX TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 HOME=/tmp/crowdrec-home"


def tmux(*args: str) -> str:
    done = subprocess.run(["tmux", "-L", SOCK, "-f", str(CONF), *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tmux {args[:2]} failed: {done.stderr.strip()}")
    return done.stdout


class Recording:
    """One program under tmux: keys in, bytes logged, checkpoints taken from tmux."""

    def __init__(self, log: Path, rows: int, cols: int) -> None:
        self.log = log
        self.rows, self.cols = rows, cols
        self.steps: list[dict] = []
        self.pids: set[int] = set()  # script and everything it started, to end after
        self.cleanups: list = []  # what a scenario started besides (run last, in reverse)

    def start(self, command: str, env_extra: str = "", wait: float = 1.0) -> None:
        inner = f"{ENV} {env_extra} {command}"
        tmux("new-session", "-d", "-s", "rec", "-x", str(self.cols), "-y", str(self.rows),
             f"script -q -f -c {shlex.quote(inner)} {shlex.quote(str(self.log))}")
        self.pids.add(int(tmux("display", "-p", "-t", "rec", "#{pane_pid}")))
        if tmux("show", "-gv", "status").strip() != "off":
            raise RuntimeError("the recording server did not read its configuration")
        self.quiet(wait)

    def stop(self) -> None:
        """End what the recording started, by process id (tmux's exit leaves `script` and
        its program running when they ignore the hangup), then the scenario's extras."""
        pids = record_processes.descendants(self.pids)
        subprocess.run(["tmux", "-L", SOCK, "kill-server"], capture_output=True)
        record_processes.end(pids)
        for cleanup in reversed(self.cleanups):
            cleanup()

    def quiet(self, least: float = 0.3) -> int:
        """Wait until the program has written nothing for a while; the log's size."""
        time.sleep(least)
        size, still = -1, 0
        for _ in range(100):
            now = self.log.stat().st_size if self.log.exists() else 0
            still = still + 1 if now == size else 0
            if still >= 3:
                break
            size = now
            time.sleep(0.1)
        return size

    def keys(self, *k: str, pause: float = 0.3) -> None:
        tmux("send-keys", "-t", "rec", *k)
        self.quiet(pause)

    def literal(self, text: str, pause: float = 0.3) -> None:
        tmux("send-keys", "-t", "rec", "-l", text)
        self.quiet(pause)

    def click(self, x: int, y: int) -> None:
        # What a terminal sends for a left click in SGR mode, straight to the program.
        self.literal(f"\x1b[<0;{x + 1};{y + 1}M\x1b[<0;{x + 1};{y + 1}m")

    def checkpoint(self) -> None:
        for _ in range(20):  # until nothing was written while tmux was asked
            at = self.quiet(0.5)
            time.sleep(0.3)  # tmux has read what script wrote
            capture = tmux("capture-pane", "-e", "-p", "-N", "-t", "rec")
            cursor = tmux("display", "-p", "-t", "rec",
                          "#{cursor_x} #{cursor_y} #{cursor_flag} #{alternate_on} #{pane_width} #{pane_height}").split()
            if self.log.stat().st_size == at:
                break
        else:
            raise RuntimeError("the program never went quiet for a capture")
        rows, cols = int(cursor[5]), int(cursor[4])
        self.steps.append({"at": at, "screen": {
            "rows": rows, "cols": cols,
            "cursor": {"x": int(cursor[0]), "y": int(cursor[1]), "visible": cursor[2] == "1"},
            "alternate": cursor[3] == "1",
            "capture": capture.split("\n")[:rows],
        }})

    def resize(self, rows: int, cols: int) -> None:
        """A checkpoint, then the window resized (the program redraws on SIGWINCH)."""
        self.checkpoint()
        self.steps.append({"at": self.quiet(0.2), "resize": {"rows": rows, "cols": cols}})
        tmux("resize-window", "-t", "rec", "-x", str(cols), "-y", str(rows))
        self.quiet(0.8)


def sample_files() -> None:
    root = FILES
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
    Path("/tmp/crowdrec-home").mkdir(exist_ok=True)


def q(path: Path) -> str:
    return shlex.quote(str(path))


# -- scenarios: (rows, cols, function) -------------------------------------------------
def vim(r: Recording) -> None:
    r.start(f"vim --clean {q(FILES / 'sample.py')}")
    r.keys(":set number", "Enter")
    r.keys(":syntax on", "Enter")
    r.keys("/function_3", "Enter")
    r.keys("j", "j", "A")
    r.literal(" # edited ✓ 中文")
    r.keys("Escape")
    r.keys(":vsplit", "Enter", pause=0.6)
    r.keys("C-w", "l", "G", pause=0.6)


def vim_splits(r: Recording) -> None:
    r.start(f"vim --clean {q(FILES / 'sample.py')} {q(FILES / 'services.txt')}")
    r.keys(":syntax on", "Enter")
    r.keys(":set number cursorline", "Enter")
    r.keys(":split", "Enter")
    r.keys(":vsplit #", "Enter")
    r.keys("C-w", "j", "50%", pause=0.5)
    r.keys("o")
    r.literal("typed in the lower window ─ ✓")
    r.keys("Escape")
    r.resize(30, 100)
    r.keys("C-w", "k", "C-d")
    r.resize(24, 80)


def less(r: Recording) -> None:
    r.start(f"less {q(FILES / 'services.txt')}")
    r.keys("Space")
    r.keys("Space")
    r.keys("/tcp/1100", "Enter")
    r.keys("k", "k")


def less_resize(r: Recording) -> None:
    r.start(f"less -N {q(FILES / 'services.txt')}")
    r.keys("Space")
    r.resize(20, 60)
    r.keys("/udp/23", "Enter")
    r.keys("b")


def man(r: Recording) -> None:
    r.start("man ls", env_extra="MANPAGER=less MANWIDTH=", wait=2.0)
    r.keys("Space")
    r.keys("/color", "Enter")
    r.resize(40, 120)
    r.keys("G")


def top(r: Recording) -> None:
    r.start("top -d 30", wait=2.0)


def htop(r: Recording) -> None:
    r.start("htop -d 300", wait=2.0)
    r.keys("F2", pause=0.6)  # setup screen: boxes and lists
    r.keys("Down", "Down")
    r.resize(30, 90)
    r.keys("Escape", pause=0.6)
    r.keys("t", pause=0.6)  # tree view


def nano(r: Recording) -> None:
    r.start(f"nano --ignorercfiles {q(FILES / 'services.txt')}")
    r.keys("C-v")
    r.keys("C-v")
    r.literal("typed after two pages down ✓")
    r.keys("Enter")
    r.literal("second typed line")
    r.keys("Up", "Up", "Up")
    r.resize(20, 70)
    r.keys("C-y")
    r.literal("after page up")


def mc(r: Recording) -> None:
    r.start(f"mc --nosubshell {q(FILES)} {q(FILES / 'color dir')}", wait=2.0)
    r.keys("Down", "Down")
    r.keys("Tab", "Down")
    r.keys("F9", pause=0.5)  # menu bar
    r.keys("Escape", "Escape", pause=0.5)
    r.resize(30, 100)


def dialog(r: Recording) -> None:
    r.start("dialog --title 'Pick one' --checklist 'Line drawing through ESC ( 0 and SO/SI' 15 50 5 "
            "a 'first item' on b 'second item' off c 'third ─ unicode' off", wait=1.0)
    r.keys("Down", "Space")
    r.resize(20, 70)
    r.keys("Down")


def dialog_shift_out(r: Recording) -> None:
    # TERM=screen: ncurses designates G1 with ESC ) 0 and draws boxes between SO and SI.
    r.start("dialog --title 'Shift out' --menu 'Boxes drawn with SO/SI' 14 44 4 "
            "1 'one' 2 'two ─ two' 3 'three'", env_extra="TERM=screen NCURSES_NO_UTF8_ACS=0", wait=1.0)
    r.keys("Down")
    r.resize(24, 80)
    r.keys("Down")


def dialog_exit(r: Recording) -> None:
    r.start("bash --norc --noprofile -c 'seq 1 8; printf \"before\\n\"; "
            "dialog --msgbox \"leaving the alternate screen\" 8 40; echo after; sleep 60'")
    r.keys("Enter", pause=0.6)


def whiptail(r: Recording) -> None:
    r.start("bash --norc --noprofile -c 'echo start; whiptail --title Whiptail --yesno \"A question?\" 10 40; "
            "echo done $?; sleep 60'")
    r.keys("Tab")


def tmux_inside(r: Recording) -> None:
    r.start("tmux -L crowdtui-inner -f /dev/null new-session 'bash --norc --noprofile -i'", wait=1.5)
    r.literal("printf '\\e[31mred\\e[0m in the inner tmux\\n'; seq 1 40")
    r.keys("Enter")
    r.keys("C-b", '"', pause=0.8)  # split: a scroll region per pane
    r.literal("ls --color=always /tmp/crowdrec-files")
    r.keys("Enter")
    r.resize(30, 100)
    r.keys("C-b", "%", pause=0.8)
    r.literal("seq 1 100")
    r.keys("Enter")




def textual_app(r: Recording) -> None:
    app = HERE / "textual_demo.py"
    r.start(f"{q(Path(sys.executable))} {q(app)}", wait=3.0)
    r.keys("Down", "Down", pause=0.6)
    r.literal("typed")
    r.resize(30, 100)
    r.keys("Tab", pause=0.6)


def git_log(r: Recording) -> None:
    r.start(f"git -C {q(REPO)} log --graph --color --decorate --oneline -n 200 a465bba",
            env_extra="GIT_PAGER='less -R' PAGER='less -R'", wait=1.5)
    r.keys("Space")
    r.resize(24, 100)
    r.keys("b")


def python_repl(r: Recording) -> None:
    r.start("python3 -q", env_extra="PYTHONSTARTUP= PYTHON_BASIC_REPL=1")
    r.literal("def square(x):")
    r.keys("Enter")
    r.literal("    return x * x")
    r.keys("Enter", "Enter")
    r.literal("[square(i) for i in range(40)]")
    r.keys("Enter")
    r.literal("import o")
    r.keys("Tab", "Tab")
    r.literal("s")
    r.keys("Enter")
    r.keys("Up", "Up")
    r.keys("C-a", "Right", "Right")


def shell(r: Recording) -> None:
    r.start("bash --norc --noprofile -i", env_extra="PS1='\\[\\e[1;32m\\]rec\\[\\e[0m\\]:\\[\\e[34m\\]\\W\\[\\e[0m\\]\\$ '")
    r.literal(f"cd {q(FILES / 'color dir')}")
    r.keys("Enter")
    r.literal("ls --color=always -l --time-style=+ | cut -c1-10,30-")
    r.keys("Enter")
    r.literal("for i in $(seq 0 15); do printf '\\e[48;5;%dm %3d ' $((i*16+1)) $((i*16+1)); done; printf '\\e[0m\\n'")
    r.keys("Enter")
    r.literal("for i in $(seq 0 8 79); do printf '\\e[38;2;%d;%d;200m#' $((i*3)) $((255-i*3)); done; printf '\\e[0m\\n'")
    r.keys("Enter")
    r.literal("printf '\\e[1mbold\\e[22m \\e[3mital\\e[23m \\e[4munder\\e[24m \\e[7mrev\\e[27m \\e[9mstrike\\e[29m \\e[2mdim\\e[0m 中文 e\\xcc\\x81\\n'")
    r.keys("Enter")
    r.literal("seq 1 5 | tr '\\n' ' '; echo")
    r.keys("Enter")
    r.literal("echo partial line being typed")
    r.keys("C-a", "Right", "Right")


def bash_editing(r: Recording) -> None:
    r.start("bash --norc --noprofile -i", env_extra="PS1='\\[\\e[7m\\]edit\\[\\e[0m\\] \\$ ' HISTFILE=/dev/null")
    r.literal("echo " + "a long line that wraps past the right edge of the screen " * 2)
    r.keys("Enter")
    r.literal("echo first history entry")
    r.keys("Enter")
    r.literal("echo " + "wrapping while typing " * 4)
    r.keys("C-a", "M-f", "M-f", "M-d", "C-e", "C-w", "C-w")
    r.keys("BSpace", "BSpace", "C-u")
    r.keys("C-r")
    r.literal("first")
    r.keys("C-e")
    r.literal(" and more")
    r.resize(24, 50)
    r.keys("C-a", "C-k")
    r.literal("clear; printf 'x\\ty\\tz\\n'; tput cup 5 10; echo here")
    r.keys("Enter")
    # Repeat (REP) and scrolling inside a region (SU/SD), as ncurses may send them.
    r.literal("seq 1 12; printf 'ab\\e[5b|\\e[3;9r\\e[2S\\e[41m\\e[1T\\e[m\\e[r\\e[20;1H'")
    r.keys("Enter")


def shell_resize(r: Recording) -> None:
    # The primary screen resized under wrapped lines and a prompt: tmux reflows them.
    r.start("bash --norc --noprofile -i", env_extra="PS1='$ '")
    r.literal("seq 1 5; printf '%s\\n' \"$(printf 'wrapped%.0s ' $(seq 1 14))\"; echo short")
    r.keys("Enter")
    r.resize(20, 50)
    r.resize(24, 100)
    r.literal("echo after the resizes")
    r.keys("Enter")


SAVE_RESTORE = (
    # DECSC once, DECRC twice; a hidden cursor stays hidden across DECRC; a position
    # saved outside the scrolling region comes back there; line drawing is restored.
    r"printf 'top\e7\e[5;10Hone\e8A\e[6;10Htwo\e8B\e[3;8r\e[10;3Hsaved\e7"
    r"\e[4;1Hin region\e8C\e(0\e7\e(B\e[?25lq\e8q\e(B\e[r\e[12;1H'; sleep 60"
)


def save_restore(r: Recording) -> None:
    r.start(f"bash --norc --noprofile -c {shlex.quote(SAVE_RESTORE)}")


def altmouse(r: Recording) -> None:
    r.start(f"python3 {q(HERE / 'altmouse_demo.py')}")
    r.literal("hi")
    r.click(10, 4)
    r.click(40, 12)


def altmouse_exit(r: Recording) -> None:
    r.start(f"bash --norc --noprofile -c 'seq 1 30; python3 {q(HERE / 'altmouse_demo.py')} --leave; sleep 60'")
    r.click(5, 5)
    r.literal("q", pause=0.5)


SCENARIOS = {
    "vim": (24, 80, vim),
    "vim_splits": (40, 120, vim_splits),
    "less": (24, 80, less),
    "less_resize": (30, 100, less_resize),
    "man": (30, 100, man),
    "top": (24, 80, top),
    "htop": (40, 120, htop),
    "nano": (24, 80, nano),
    "mc": (24, 80, mc),
    "dialog": (24, 80, dialog),
    "dialog_shift_out": (30, 100, dialog_shift_out),
    "dialog_exit": (24, 80, dialog_exit),
    "whiptail": (24, 80, whiptail),
    "tmux_inside": (24, 80, tmux_inside),
    "textual_app": (24, 80, textual_app),
    "git_log": (30, 120, git_log),
    "python_repl": (20, 60, python_repl),
    "shell": (24, 80, shell),
    "bash_editing": (24, 80, bash_editing),
    "shell_resize": (24, 80, shell_resize),
    "save_restore": (16, 60, save_restore),
    "altmouse": (24, 80, altmouse),
    "altmouse_exit": (24, 80, altmouse_exit),
    "claude_code": (30, 100, record_claude.claude_code),
}


def strip_script(raw: bytes) -> tuple[bytes, int]:
    """The program's bytes without script's header/footer, and the header's length."""
    first = raw.find(b"\n")
    head = first + 1 if raw.startswith(b"Script started") else 0
    body = raw[head:]
    end = body.rfind(b"\nScript done on ")
    return (body[:end] if end >= 0 else body), head


def record(name: str) -> None:
    rows, cols, scenario = SCENARIOS[name]
    with tempfile.TemporaryDirectory() as tmp:
        CONF.write_text("set -g status off\nset -g escape-time 0\nset -g history-limit 0\n")
        rec = Recording(Path(tmp) / f"{name}.raw", rows, cols)
        subprocess.run(["tmux", "-L", SOCK, "kill-server"], capture_output=True)
        time.sleep(0.3)
        try:
            scenario(rec)
            rec.checkpoint()
        finally:
            subprocess.run(["tmux", "-L", "crowdtui-inner", "kill-server"], capture_output=True)
            rec.stop()
        stream, head = strip_script(rec.log.read_bytes())
    steps = []
    for step in rec.steps:
        step["at"] = min(max(0, step["at"] - head), len(stream))
        steps.append(step)
    stream = stream[: steps[-1]["at"]]  # what the program wrote after the last capture (its exit)
    (OUT / f"{name}.bin.gz").write_bytes(gzip.compress(stream, 9, mtime=0))
    expected = {
        "program": name,
        "rows": rows,
        "cols": cols,
        "source": "tmux 3.3a: capture-pane -e -p -N and display -p at each step",
        "steps": steps,
    }
    (OUT / f"{name}.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: {len(stream)} bytes, {len(steps)} steps")


ACS_LETTERS = "+,-.0_`abcdefghijklmnopqrstuvwxyz{|}~"


def record_acs_table() -> None:
    """What tmux *displays* for each letter drawn in the DEC line-drawing set (a
    capture shows the letters): a pane prints them after ``ESC ( 0``, a tmux client
    attached under `script` in a UTF-8 locale draws them, and its bytes are read."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "client.log"
        inner, outer = ["tmux", "-L", f"{SOCK}-acs", "-f", "/dev/null"], ["tmux", "-L", SOCK, "-f", "/dev/null"]
        try:
            subprocess.run(inner + ["new-session", "-d", "-x", "100", "-y", "5",
                                    f"printf '\\033(0%s\\033(B|' {shlex.quote(ACS_LETTERS)}; sleep 30"], check=True)
            client = " ".join(map(shlex.quote, inner + ["attach"]))
            subprocess.run(outer + ["new-session", "-d", "-x", "100", "-y", "5",
                                    f"{ENV} script -q -f -c {shlex.quote(client)} {q(log)}"], check=True)
            time.sleep(2.0)
            text = log.read_bytes().decode("utf-8", "replace")
        finally:
            subprocess.run(outer + ["kill-server"], capture_output=True)
            subprocess.run(inner + ["kill-server"], capture_output=True)
    end = text.index("\x1b(B\x1b[m|")  # tmux leaves the line-drawing set before the '|'
    drawn = text[end - len(ACS_LETTERS) : end]
    if len(drawn) != len(ACS_LETTERS):
        raise RuntimeError(f"unexpected client output {drawn!r}")
    table = {"source": "a tmux 3.3a client in a UTF-8 locale drawing ESC ( 0 text",
             "letters": ACS_LETTERS, "displayed": drawn}
    (OUT / "tmux_acs.json").write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    print(f"tmux_acs: {drawn}")


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    sample_files()
    OUT.mkdir(exist_ok=True)
    if not sys.argv[1:]:
        record_acs_table()
    for name in names:
        record(name)


if __name__ == "__main__":
    main()
