"""Child program for input tests: raw mode, asks for the given modes, then prints
every chunk of input it receives as hex on its own line ("IN <hex>")."""

import os
import sys
import tty

tty.setraw(0)
modes = sys.argv[1:]
setup = ""
if "appcursor" in modes:
    setup += "\x1b[?1h"
if "mouse" in modes:
    setup += "\x1b[?1000h\x1b[?1006h"
if "paste" in modes:
    setup += "\x1b[?2004h"
os.write(1, (setup + "READY\r\n").encode())
while True:
    data = os.read(0, 4096)
    if not data or data == b"\x04":
        break
    os.write(1, f"IN {data.hex()}\r\n".encode())
