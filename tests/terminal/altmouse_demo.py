"""A small full-screen program used to record a stream: alternate screen, mouse
reporting, bracketed paste, cursor shape, title, colours, wide and combining text.
It draws, then reports every input it gets (mouse clicks included) on the screen.
Run under a terminal; `q` quits (and, with --leave, restores the primary screen)."""

import os
import sys
import termios
import tty

out = sys.stdout


def w(s):
    out.write(s)
    out.flush()


def main() -> None:
    leave = "--leave" in sys.argv
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        w("\x1b]2;altmouse demo\x07\x1b[?1049h\x1b[?1002h\x1b[?1006h\x1b[?2004h\x1b[5 q\x1b[H\x1b[2J")
        w("\x1b[1;1H\x1b[44;97m" + " altmouse demo ".center(80) + "\x1b[0m")
        for i in range(16):
            w(f"\x1b[{3 + i // 8};{2 + (i % 8) * 5}H\x1b[48;5;{i}m    \x1b[0m")
        for i in range(24):
            r, g, b = i * 10, 255 - i * 10, 128
            w(f"\x1b[6;{2 + i}H\x1b[48;2;{r};{g};{b}m \x1b[0m")
        w("\x1b[8;2H\x1b[1mbold\x1b[0m \x1b[2mdim\x1b[0m \x1b[3mitalic\x1b[0m \x1b[4munder\x1b[0m "
          "\x1b[7mreverse\x1b[0m \x1b[9mstrike\x1b[0m \x1b[1;3;4;38;5;208morange\x1b[0m")
        w("\x1b[10;2H中文字符 wide | cafe\u0301 combining | \u2603 snow")
        w("\x1b[12;2H\x1b[38:2::10:200:30mcolon-truecolor\x1b[0m \x1b[>4;2m\x1b[?4mafter-odd-sequences")
        w("\x1b[14;2Hclick somewhere or type; q quits")
        w("\x1b[16;1H\x1b[33m" + "-" * 80 + "\x1b[0m")
        w("\x1b[20;10r\x1b[r")  # margins set and reset
        row = 17
        buf = b""
        while True:
            data = os.read(fd, 1024)
            if not data:
                break
            buf += data
            if b"q" in data and not data.startswith(b"\x1b"):
                break
            w(f"\x1b[{row};2H\x1b[K\x1b[32mgot\x1b[0m {data!r}"[:200])
            row = 17 + (row - 16) % 6
        w("\x1b[23;2Hbye\x1b[0 q")
    finally:
        if leave:
            w("\x1b[?2004l\x1b[?1006l\x1b[?1002l\x1b[?1049l")
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
    if leave:
        w("left the alternate screen\r\n")
        w("$ ")


if __name__ == "__main__":
    main()
