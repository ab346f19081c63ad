"""CLI commands ``attach`` and ``exec``: an agent's terminal from a plain shell.

``crowdtui attach NAME`` joins the agent's shared terminal full-screen: the local
terminal goes into raw mode, its size follows the window (SIGWINCH), and Ctrl-]
detaches (the agent keeps running). ``crowdtui exec NAME [CMD...]`` opens a new shell
(bash where present) or runs CMD in the agent's container: interactive when stdin is
a terminal, otherwise the command's output and exit status come back as they are.
"""

from __future__ import annotations

import argparse
import os
import sys

from crowdtui.cli.common import completes_agents
from crowdtui.errors import CrowdError, UsageError

DETACH_KEY = b"\x1d"  # Ctrl-]
DETACH_HINT = "Ctrl-] detaches; the agent keeps running"
# Modes a program may have switched on in the local terminal, switched off on detach:
# mouse reporting, bracketed paste, application cursor keys and keypad; then the cursor
# is shown and colours reset.
_RESET_MODES = b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?1l\x1b>\x1b[?25h\x1b[0m"
_ALT_ON = (b"\x1b[?1049h", b"\x1b[?1047h", b"\x1b[?47h")
_ALT_OFF = (b"\x1b[?1049l", b"\x1b[?1047l", b"\x1b[?47l")


class AgentNotRunning(CrowdError):
    pass


class UnknownAgent(CrowdError):
    pass


def register(sub) -> None:
    p = sub.add_parser(
        "attach",
        help="join an agent's terminal full-screen (Ctrl-] detaches; the agent keeps running)",
        description="Join the running agent's terminal from this terminal. Everything you type "
        f"goes to the agent; {DETACH_HINT}.",
    )
    completes_agents(p.add_argument("name", metavar="NAME", help="the agent"))
    p.set_defaults(func=cmd_attach, interactive="`attach` (a full-screen terminal)")

    p = sub.add_parser(
        "exec",
        help="open a shell (bash where present) or run CMD in an agent's container",
        description="Open a new interactive shell in the agent's container, or run CMD there. "
        "With stdin not a terminal, CMD runs without one and its exit status is returned.",
    )
    completes_agents(p.add_argument("name", metavar="NAME", help="the agent"))
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD...",
                   help="command and its arguments, taken as they are (default: a shell)")
    p.set_defaults(func=cmd_exec)


# --------------------------------------------------------------------------- finding the agent


def find_agent_container(client, workspace, name: str):
    """The running container of agent ``name`` in ``workspace``, or a CrowdError saying why not."""
    from crowdtui.runtime import labels

    if not _valid_name(name):
        raise UnknownAgent(
            f"{name!r} is not a valid agent name (a-z, 0-9, '_' and '-'); `crowdtui ls` lists the agents"
        )
    from crowdtui.engine_config import LOCAL
    from crowdtui.runtime.engines import Engines, recorded_engine

    engine = recorded_engine(workspace, name)
    if engine != LOCAL:  # the agent runs on another engine: look there (callers use container.client)
        client = Engines(workspace, client).client(engine)
    found = client.containers.list(
        all=True,
        filters={"label": [f"{labels.WORKSPACE}={workspace.id}", f"{labels.AGENT}={name}",
                           f"{labels.KIND}=agent"]},
    )
    running = [c for c in found if c.status == "running"]
    if running:
        return running[0]
    if found:
        state = found[0].attrs.get("State", {})
        how = found[0].status
        if how == "exited":
            how = f"exited with code {state.get('ExitCode')}"
        raise AgentNotRunning(f"agent {name} is not running ({how}); start it with `crowdtui up {name}`")
    from crowdtui.roster import load_roster

    if name in load_roster(workspace):
        raise AgentNotRunning(f"agent {name} is not running; start it with `crowdtui up {name}`")
    raise UnknownAgent(f"no agent named {name} in {workspace.root}; `crowdtui ls` lists the agents")


def _valid_name(name: str) -> bool:
    from qms.names import NAME_RE

    return bool(NAME_RE.fullmatch(name))


def _connect():
    from crowdtui.runtime.engine import connect

    return connect()


# --------------------------------------------------------------------------- passthrough


def split_incomplete_utf8(data: bytes) -> tuple[bytes, bytes]:
    """Split off a UTF-8 character cut short at the end of ``data``: (complete, held back)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:  # a continuation byte: keep looking for the lead byte
            continue
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
        if need > back:
            return data[: n - back], data[n - back :]
        return data, b""
    return data, b""


class _Output:
    """Writes the agent's output to the local terminal, whole characters only."""

    def __init__(self, fd: int):
        self.fd = fd
        self.held = b""
        self.alt_screen = False
        self._tail = b""

    def feed(self, data: bytes) -> None:
        scan = self._tail + data
        on = max(scan.rfind(s) for s in _ALT_ON)
        off = max(scan.rfind(s) for s in _ALT_OFF)
        if on != off:
            self.alt_screen = on > off
        self._tail = scan[-8:]
        out, self.held = split_incomplete_utf8(self.held + data)
        self.write(out)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                import select

                select.select([], [self.fd], [], 1.0)
                continue
            view = view[written:]

    def restore(self) -> None:
        """Leave the local terminal as the agent's program found it."""
        self.write((b"\x1b[?1049l" if self.alt_screen else b"") + _RESET_MODES)


def _terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
        return size.lines, size.columns
    except OSError:
        return 24, 80


async def passthrough(session, *, stdin_fd: int, stdout_fd: int, redraw: bool) -> str:
    """Connect the local terminal to ``session`` until Ctrl-] ("detached") or it ends ("ended")."""
    import asyncio
    import signal
    import termios
    import tty

    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    output = _Output(stdout_fd)

    def finish(how: str) -> None:
        if not done.done():
            done.set_result(how)

    viewer = session.add_viewer(output.feed, on_close=lambda: finish("ended"), replay=True)

    def on_input() -> None:
        try:
            data = os.read(stdin_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            finish("detached")
            return
        cut = data.find(DETACH_KEY)
        if cut >= 0:
            viewer.write(data[:cut])
            finish("detached")
            return
        viewer.write(data)

    def on_winch() -> None:
        viewer.resize(*_terminal_size(stdout_fd))

    saved = termios.tcgetattr(stdin_fd)
    tty.setraw(stdin_fd)
    loop.add_reader(stdin_fd, on_input)
    loop.add_signal_handler(signal.SIGWINCH, on_winch)
    try:
        rows, cols = _terminal_size(stdout_fd)
        if redraw and cols > 1:
            # a size change makes full-screen programs repaint for the newcomer
            await session.resize_now(rows, cols - 1)
        viewer.resize(rows, cols)
        return await done
    finally:
        loop.remove_reader(stdin_fd)
        loop.remove_signal_handler(signal.SIGWINCH)
        viewer.close()
        output.restore()
        termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def _need_terminal(what: str) -> None:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            f"{what} needs a terminal (stdin and stdout are not both one); "
            "use `crowdtui exec NAME CMD...` from scripts"
        )


# --------------------------------------------------------------------------- commands


async def cmd_attach(args) -> int:
    import asyncio

    from crowdtui.cli.common import workspace_of
    from crowdtui.runtime.pty import PtySession

    ws = workspace_of(args)
    client = await asyncio.to_thread(_connect)
    try:
        container = await asyncio.to_thread(find_agent_container, client, ws, args.name)
        _need_terminal("crowdtui attach")
        session = await PtySession.open(container.client, container.id)
        print(f"crowdtui: attached to {args.name}. {DETACH_HINT}.", file=sys.stderr, flush=True)
        try:
            how = await passthrough(session, stdin_fd=sys.stdin.fileno(),
                                    stdout_fd=sys.stdout.fileno(), redraw=True)
        finally:
            await session.close()
        if how == "detached":
            print(f"\r\ncrowdtui: detached from {args.name}; it keeps running "
                  f"(`crowdtui attach {args.name}` to come back)", file=sys.stderr)
            return 0
        print(f"\r\ncrowdtui: {args.name}'s terminal closed: the agent stopped", file=sys.stderr)
        return 1
    finally:
        client.close()


async def cmd_exec(args) -> int:
    import asyncio

    from crowdtui.cli.common import workspace_of

    ws = workspace_of(args)
    if args.cmd[:1] == ["--"]:
        args.cmd = args.cmd[1:]
    from crowdtui.cli.common import wants_json

    as_json = wants_json(args)
    if as_json and not args.cmd:
        raise UsageError("`exec` without CMD is interactive (a shell): --json needs a command, "
                         f"e.g. `crowdtui exec --json {args.name} ls /` (--json before NAME)")
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not as_json
    if not interactive and not args.cmd:
        raise UsageError(
            "no command given and this is not a terminal, so there is no shell to open; "
            f"give one, e.g. `crowdtui exec {args.name} ls /`"
        )
    client = await asyncio.to_thread(_connect)
    try:
        container = await asyncio.to_thread(find_agent_container, client, ws, args.name)
        if as_json:
            return await asyncio.to_thread(_exec_json, container.client, container.id, args.name, args.cmd)
        if not interactive:
            return await asyncio.to_thread(_exec_plain, container.client, container.id, args.cmd)
        from crowdtui.runtime.pty import open_exec

        rows, cols = _terminal_size(sys.stdout.fileno())
        session = await open_exec(container.client, container.id, args.cmd or None, rows=rows, cols=cols)
        try:
            how = await passthrough(session, stdin_fd=sys.stdin.fileno(),
                                    stdout_fd=sys.stdout.fileno(), redraw=False)
        finally:
            await session.close()
        if how == "detached":
            print(f"\r\ncrowdtui: closed the exec in {args.name} (what it ran was ended)", file=sys.stderr)
            return 0
        for _ in range(50):  # the engine records the exit code a moment after the stream ends
            code = await session.exit_code()
            if code is not None:
                return int(code)
            await asyncio.sleep(0.05)
        return 0
    finally:
        client.close()


EXEC_JSON_LIMIT = 1 << 20  # bytes kept of each of stdout and stderr with --json


def _exec_json(client, container_id: str, name: str, cmd: list[str]) -> int:
    """``exec --json NAME CMD``: run ``cmd`` without a terminal and print one object with
    its output (the first MiB of each stream) and exit status, which is also ours."""
    from crowdtui.cli.common import print_json

    api = client.api
    exec_id = api.exec_create(container_id, cmd, stdout=True, stderr=True)["Id"]
    streams = {"stdout": bytearray(), "stderr": bytearray()}
    truncated = False
    for chunks in api.exec_start(exec_id, stream=True, demux=True):
        for key, chunk in zip(("stdout", "stderr"), chunks):
            if chunk:
                room = EXEC_JSON_LIMIT - len(streams[key])
                truncated |= len(chunk) > room
                streams[key] += chunk[:max(room, 0)]
    code = int(api.exec_inspect(exec_id).get("ExitCode") or 0)
    print_json({"name": name, "command": cmd, "exit_code": code, "truncated": truncated,
                **{k: v.decode("utf-8", "replace") for k, v in streams.items()}})
    return code


def _exec_plain(client, container_id: str, cmd: list[str]) -> int:
    """Run ``cmd`` without a terminal; stream its stdout and stderr; return its exit status."""
    api = client.api
    exec_id = api.exec_create(container_id, cmd, stdout=True, stderr=True)["Id"]
    for out, err in api.exec_start(exec_id, stream=True, demux=True):
        if out:
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        if err:
            sys.stderr.buffer.write(err)
            sys.stderr.buffer.flush()
    return int(api.exec_inspect(exec_id).get("ExitCode") or 0)
