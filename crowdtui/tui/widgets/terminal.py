"""The embedded terminal widget: a PTY session drawn with Textual's line API.

Output is batched and fed to the emulator at most ~30 times a second; only the
rows that changed are repainted, and a hidden terminal keeps its state without
repainting. Keys, mouse and paste go to the program; Ctrl+] gives focus back to
the app; Shift+PgUp/PgDn and the mouse wheel browse scrollback without sending
anything to the program.
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from rich.style import Style
from textual import events
from textual.content import Content
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from crowdtui.terminal import Cell, Emulator, TerminalSession, Viewer, encode_key, encode_mouse
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.terminal_cells import CellPainter


class Terminal(Widget, can_focus=True):
    """A terminal attached to a PTY session (anything shaped like TerminalSession)."""

    DEFAULT_CSS = """
    Terminal {
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        height: 1fr;
        width: 1fr;
        padding: 0;
    }
    Terminal:focus {
        border: round $accent;
        border-title-color: $text;
    }
    """

    RELEASE_KEY = "ctrl+right_square_bracket"
    RELEASE_LABEL = "ctrl+] releases"
    MAX_FPS = 30.0
    FLUSH_BUDGET = 0.025  # seconds of parsing per event-loop turn
    BIG_READ = 16384  # bytes: a read this large means more is coming
    #: When the operator last typed into any terminal (monotonic): background work
    #: such as stats sampling waits while someone types, so echoes are not held up.
    typed_at = float("-inf")
    WHEEL_LINES = 3

    class TitleChanged(Message, bubble=True):
        """The program set its window title (OSC 0/2)."""

        def __init__(self, terminal: "Terminal", title: str) -> None:
            super().__init__()
            self.terminal = terminal
            self.title = title

        @property
        def control(self) -> "Terminal":
            return self.terminal

    class Closed(Message, bubble=True):
        """The session ended."""

        def __init__(self, terminal: "Terminal") -> None:
            super().__init__()
            self.terminal = terminal

        @property
        def control(self) -> "Terminal":
            return self.terminal

    class FocusReleased(Message, bubble=True):
        """The user pressed the release key: the app may move focus elsewhere."""

        def __init__(self, terminal: "Terminal") -> None:
            super().__init__()
            self.terminal = terminal

        @property
        def control(self) -> "Terminal":
            return self.terminal

    def __init__(
        self,
        session: Optional[TerminalSession] = None,
        *,
        label: str = "terminal",
        scrollback: int = 5000,
        name: Optional[str] = None,
        id: Optional[str] = None,
        classes: Optional[str] = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.emulator = Emulator(24, 80, scrollback=scrollback, on_reply=self._write)
        self.label = label
        self._session: Optional[TerminalSession] = session
        self._viewer: Optional[Viewer] = None
        self._pending: list[bytes] = []
        self._flush_handle: Optional[asyncio.Handle] = None
        self._flush_due = 0.0  # when the scheduled flush runs (monotonic)
        self._last_flush = 0.0
        self._last_repaint = 0.0
        self._frame_due = False
        self._echo_due = False  # a key was typed: its echo is painted at once
        self._slice = 1 << 20  # bytes fed per step; adapts to FLUSH_BUDGET
        self._full_repaint = True
        self._scroll_back = 0  # rows scrolled back into history; 0 = live
        self._painter = CellPainter()
        self._title = ""
        self.closed = False
        #: Counters for tests and benchmarks.
        self.flushes = 0
        self.repaints = 0
        self.bytes_received = 0

    # -- session ----------------------------------------------------------------
    @property
    def session(self) -> Optional[TerminalSession]:
        return self._session

    def attach(self, session: TerminalSession) -> None:
        """Show ``session`` (replacing any other): paint its backlog, then follow it."""
        self.detach()
        self._session = session
        self.closed = False
        # A new session starts from a clean terminal of the same size.
        self.emulator = Emulator(self.emulator.rows, self.emulator.cols,
                                 scrollback=self.emulator.screen.history.maxlen or 0, on_reply=self._write)
        self._pending.clear()
        self._scroll_back = 0
        self._title = ""
        self.border_subtitle = ""
        self._update_border()
        self._full_repaint = True
        if self.is_mounted:
            self._connect()

    def detach(self) -> None:
        """Stop viewing the session (the program keeps running)."""
        if self._viewer is not None:
            viewer, self._viewer = self._viewer, None
            try:
                viewer.close()
            except Exception:
                pass
        self._session = None

    def _connect(self) -> None:
        session = self._session
        if session is None or self._viewer is not None:
            return
        backlog = getattr(session, "backlog", b"") or b""
        if backlog:
            self.emulator.feed(backlog)
            self._after_feed()  # a title the program set before we attached shows too
        self._viewer = session.add_viewer(self._on_output, self._on_close)
        self._sync_size()
        self._full_repaint = True
        self.refresh()

    def _write(self, data: bytes) -> None:
        if self._viewer is not None and data:
            try:
                self._viewer.write(data)
            except Exception:
                pass

    def send(self, data: bytes) -> None:
        """Type ``data`` into the program (and return to the live screen)."""
        if self._scroll_back:
            self._scroll_back = 0
            self._full_repaint = True
            self.refresh()
        self._echo_due = True
        Terminal.typed_at = time.monotonic()
        self._write(data)

    # -- output path ---------------------------------------------------------------
    def _on_output(self, data: bytes) -> None:
        self._pending.append(data)
        self.bytes_received += len(data)
        # Small writes wait for the next frame and are parsed together; a full PTY
        # read (a flood, a redraw storm) is parsed at once: waiting gains nothing.
        # Repaints stay capped at MAX_FPS either way.
        now = time.monotonic()
        if self._echo_due or len(data) >= self.BIG_READ:
            due = now
        else:
            due = self._last_flush + 1.0 / self.MAX_FPS
        if self._flush_handle is None or due < self._flush_due:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush_due = due
            self._flush_handle = asyncio.get_running_loop().call_later(max(0.0, due - now), self._flush)

    def _on_close(self) -> None:
        self.closed = True
        self._viewer = None
        self.border_subtitle = "session closed"
        self.post_message(self.Closed(self))

    def _flush(self) -> None:
        """Feed what arrived (within a time budget per loop turn), then repaint
        if a frame is due. Work left over continues on the next loop turn, so a
        storm that cannot be parsed as fast as it arrives never freezes the app."""
        self._flush_handle = None
        now = time.monotonic()
        self._last_flush = now
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            fed = 0
            while fed < len(data):
                piece = data[fed : fed + self._slice]
                t = time.monotonic()
                self.emulator.feed(piece)
                spent = time.monotonic() - t
                fed += len(piece)
                # Size the next slice to fit the budget at the rate just measured.
                rate = len(piece) / max(spent, 1e-6)
                self._slice = int(min(max(rate * self.FLUSH_BUDGET, 4096), 16 << 20))
                if fed < len(data) and time.monotonic() - now > self.FLUSH_BUDGET:
                    self._pending.append(data[fed:])
                    break
            self.flushes += 1
            self._after_feed()
            self._frame_due = True
        now = time.monotonic()
        # The frame cap holds floods back; the echo of a key typed goes out at once.
        if self._frame_due and (self._echo_due or now - self._last_repaint >= 1.0 / self.MAX_FPS):
            self._frame_due = False
            self._echo_due = False
            self._last_repaint = now
            self._repaint()
        loop = asyncio.get_running_loop()
        if self._pending:
            self._flush_due = now
            self._flush_handle = loop.call_soon(self._flush)
        elif self._frame_due:
            self._flush_due = self._last_repaint + 1.0 / self.MAX_FPS
            self._flush_handle = loop.call_later(self._flush_due - now, self._flush)

    def _after_feed(self) -> None:
        added = self.emulator.screen.history_changed
        self.emulator.screen.history_changed = 0
        if self._scroll_back and self.emulator.alternate:
            self._scroll_back = 0  # a full-screen program took over: show it
            self._full_repaint = True
        if self._scroll_back and added:
            # Keep the rows the user is reading where they are.
            self._scroll_back = min(self._scroll_back + added, len(self.emulator.screen.history))
            self._full_repaint = True
        if self.emulator.title != self._title:
            self._title = self.emulator.title
            self._update_border()
            self.post_message(self.TitleChanged(self, self._title))

    def _repaint(self) -> None:
        """Refresh what changed, if anyone can see it."""
        if not self.is_mounted or not self.display or not self.visible or not self.region.area:
            self._full_repaint = self._full_repaint or bool(self.emulator.screen.dirty)
            return
        self.repaints += 1
        dirty = self.emulator.take_dirty()
        if self._full_repaint or self._scroll_back:
            self._full_repaint = False
            self.refresh()
            return
        width = self.size.width
        cursor_y = self.emulator.cursor[1]
        dirty.add(cursor_y)
        dirty.add(self._last_cursor_y)
        for start, count in _runs(sorted(y for y in dirty if 0 <= y < self.size.height)):
            self.refresh(Region(0, start, width, count))

    _last_cursor_y = 0

    # -- size ------------------------------------------------------------------------
    def on_mount(self) -> None:
        self._update_border()
        self._connect()

    def on_unmount(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._viewer is not None:
            viewer, self._viewer = self._viewer, None
            try:
                viewer.close()
            except Exception:
                pass

    def on_resize(self, event: events.Resize) -> None:
        self._sync_size()

    def on_show(self) -> None:
        self._full_repaint = True
        self._repaint()

    def _sync_size(self) -> None:
        size = self.size
        if size.width <= 0 or size.height <= 0:
            return
        rows, cols = size.height, size.width
        if (rows, cols) != (self.emulator.rows, self.emulator.cols):
            self.emulator.resize(rows, cols)
            # A wider screen reflows scrollback into fewer rows: stay within it.
            self._scroll_back = min(self._scroll_back, len(self.emulator.screen.history))
            self._full_repaint = True
        if self._viewer is not None:
            try:
                self._viewer.resize(rows, cols)
            except Exception:
                pass
        self.refresh()

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return container.height

    # -- focus and border --------------------------------------------------------------
    def on_focus(self) -> None:
        self._update_border()
        self.refresh()

    def on_blur(self) -> None:
        self._update_border()
        self.refresh()

    def _update_border(self) -> None:
        # The title comes from the program (OSC 0/2): plain Content, never markup,
        # and control characters made visible, so no title can break or script the app.
        title = self._title or self.label
        self.border_title = Content(f"{inert(title)} · {self.RELEASE_LABEL}")

    # -- rendering ---------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        emu = self.emulator
        history = emu.screen.history
        if self._scroll_back:
            index = len(history) - self._scroll_back + y
            if index < len(history):
                return self._strip(emu.history_line(index), width, cursor_x=None)
            y = index - len(history)
        if y >= emu.rows:
            return Strip.blank(width)
        cursor_x = None
        if y == emu.cursor[1] and emu.cursor_visible and not self._scroll_back and self.has_focus:
            cursor_x = min(emu.cursor[0], emu.cols - 1)
            self._last_cursor_y = y
        return self._strip(emu.line(y), width, cursor_x)
    def _style(self, key: tuple) -> Style:
        """Style for a cell's attributes (Cell fields after data), plus a cursor flag."""
        return self._painter.style(key)

    def _strip(self, cells: list[Cell], width: int, cursor_x: Optional[int]) -> Strip:
        return self._painter.strip(cells, width, cursor_x, self.emulator.cursor_shape)

    # -- input -------------------------------------------------------------------------
    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == self.RELEASE_KEY:
            event.stop()
            event.prevent_default()
            self.post_message(self.FocusReleased(self))
            self.blur()
            return
        if key in ("shift+pageup", "shift+pagedown", "shift+home", "shift+end") and not self.emulator.alternate:
            event.stop()
            event.prevent_default()
            page = max(1, self.size.height - 1)
            if key == "shift+pageup":
                self.scroll_history(page)
            elif key == "shift+pagedown":
                self.scroll_history(-page)
            elif key == "shift+home":
                self.scroll_history(len(self.emulator.screen.history))
            else:
                self.scroll_history(-self._scroll_back)
            return
        data = encode_key(key, event.character, application_cursor=self.emulator.application_cursor)
        if data is None:
            return
        event.stop()
        event.prevent_default()
        self.send(data)

    def on_paste(self, event: events.Paste) -> None:
        event.stop()
        text = event.text.replace("\r\n", "\r").replace("\n", "\r")
        if self.emulator.bracketed_paste:
            text = "\x1b[200~" + text.replace("\x1b[201~", "") + "\x1b[201~"
        self.send(text.encode())

    def scroll_history(self, lines: int) -> None:
        """Scroll back (positive) or forward (negative) through scrollback."""
        new = max(0, min(self._scroll_back + lines, len(self.emulator.screen.history)))
        if new != self._scroll_back:
            self._scroll_back = new
            self.refresh()

    @property
    def scrolled_back(self) -> int:
        """Rows scrolled back into history (0 = showing the live screen)."""
        return self._scroll_back

    def _mouse(self, kind: str, event: events.MouseEvent) -> bool:
        emu = self.emulator
        if not emu.mouse_tracking or self._scroll_back:
            return False
        offset = event.get_content_offset(self)
        if offset is None:
            return False
        data = encode_mouse(
            kind, offset.x, offset.y, button=event.button, shift=event.shift, alt=event.meta,
            ctrl=event.ctrl, tracking=emu.mouse_tracking, encoding=emu.mouse_encoding,
        )
        if data is not None:
            self._write(data)
        return True

    def on_mouse_down(self, event: events.MouseDown) -> None:
        if self._mouse("press", event):
            event.stop()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._mouse("release", event):
            event.stop()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self.emulator.mouse_tracking in ("button", "any"):
            self._mouse("motion", event)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        if self._mouse("wheel_up", event):
            return
        if self.emulator.alternate:
            self._write(encode_key("up", application_cursor=self.emulator.application_cursor) * self.WHEEL_LINES)
        else:
            self.scroll_history(self.WHEEL_LINES)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        if self._mouse("wheel_down", event):
            return
        if self.emulator.alternate:
            self._write(encode_key("down", application_cursor=self.emulator.application_cursor) * self.WHEEL_LINES)
        else:
            self.scroll_history(-self.WHEEL_LINES)


def _runs(ys: list[int]):
    """Consecutive runs in sorted ys as (start, count)."""
    start = prev = None
    for y in ys:
        if start is None:
            start = prev = y
        elif y == prev + 1:
            prev = y
        else:
            yield start, prev - start + 1
            start = prev = y
    if start is not None:
        yield start, prev - start + 1
