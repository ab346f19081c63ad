"""The embedded terminal emulator (headless: pyte underneath, never textual).

``Emulator`` turns program output into a screen of ``Cell``s; ``encode_key`` and
``encode_mouse`` turn user input into the bytes the program expects;
``TerminalSession``/``Viewer`` are the shape of a PTY session a widget attaches to.
"""

from .cells import Cell
from .emulator import Emulator
from .keys import encode_key
from .mouse import encode_mouse
from .session import TerminalSession, Viewer

__all__ = ["Cell", "Emulator", "TerminalSession", "Viewer", "encode_key", "encode_mouse"]
