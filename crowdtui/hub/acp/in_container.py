"""The agent's file and terminal requests (``fs/*``, ``terminal/*``), served inside its own
container, never on the host.

Every file is read or written by a process exec'd in the agent's container as the agent's
user: what the agent may not touch there (the read-only root, another user's files), it
cannot have touched through crowdtui either, and nothing of the host is reachable. Paths
must be absolute (the protocol says so) and free of NUL; sizes are bounded.

Terminals are processes exec'd without a TTY (a command with no args is a shell command line,
run by ``sh -c``), their output kept up to the byte limit the
agent asked for (the oldest part dropped first, at a character boundary), bounded by ours.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from crowdtui.hub.acp.connection import INVALID_PARAMS, SERVER_ERROR, RpcError
from crowdtui.runtime.exec_pipe import ExecPipe, open_pipe, run_in
from crowdtui.runtime.pty import TerminalError

MAX_FILE = 8 * 1024 * 1024  # bytes one read or write may move
MAX_TERMINAL_OUTPUT = 1024 * 1024
MAX_TERMINALS = 16
MAX_ARGS = 256

# Read a text file, optionally from 1-based line N for L lines (Python: in every agent image).
READ = r"""
import sys
path, line, limit, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(path, "rb") as fh:
    data = fh.read(cap + 1)
if len(data) > cap:
    sys.stderr.write("file too large"); sys.exit(3)
text = data.decode("utf-8", "replace")
if line > 0 or limit > 0:
    lines = text.splitlines(keepends=True)
    start = max(line - 1, 0)
    text = "".join(lines[start:start + limit] if limit > 0 else lines[start:])
sys.stdout.write(text)
"""
# Write stdin to a file (its folder made first), replacing it.
WRITE = r"""
import os, sys
path = sys.argv[1]
os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
data = sys.stdin.buffer.read()
with open(path, "wb") as fh:
    fh.write(data)
"""


def _path(params: dict[str, Any]) -> str:
    path = params.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path or len(path) > 4096:
        raise RpcError(INVALID_PARAMS, "path must be an absolute path inside the agent's container")
    return path


def _count(params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RpcError(INVALID_PARAMS, f"{key} must be a positive whole number")
    return value


@dataclass
class Terminal:
    limit: int
    pipe: ExecPipe | None = None
    output: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    exit_code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, data: bytes) -> None:
        self.output += data
        if len(self.output) > self.limit:
            cut = len(self.output) - self.limit
            while cut < len(self.output) and (self.output[cut] & 0xC0) == 0x80:
                cut += 1  # not inside a UTF-8 character
            del self.output[:cut]
            self.truncated = True


class InContainer:
    """Serves one agent's fs and terminal requests in its container (``container_id``)."""

    def __init__(self, client: Any, container_id: str, *, user: str, workdir: str | None = None):
        self.client = client
        self.container_id = container_id
        self.user = user
        self.workdir = workdir
        self._terminals: dict[str, Terminal] = {}
        self._waiters: set[asyncio.Task] = set()
        self._ids = itertools.count(1)

    async def read_text_file(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _path(params)
        line, limit = _count(params, "line"), _count(params, "limit")
        code, out, err = await self._run(["python3", "-c", READ, path, str(line), str(limit), str(MAX_FILE)])
        if code != 0:
            raise RpcError(SERVER_ERROR, f"cannot read {path}: {_why(err, code)}")
        return {"content": out.decode("utf-8", "replace")}

    async def write_text_file(self, params: dict[str, Any]) -> dict[str, Any]:
        path = _path(params)
        content = params.get("content")
        if not isinstance(content, str):
            raise RpcError(INVALID_PARAMS, "content must be text")
        data = content.encode("utf-8", "surrogatepass")
        if len(data) > MAX_FILE:
            raise RpcError(INVALID_PARAMS, f"content over {MAX_FILE} bytes")
        code, _out, err = await self._run(["python3", "-c", WRITE, path], stdin=data)
        if code != 0:
            raise RpcError(SERVER_ERROR, f"cannot write {path}: {_why(err, code)}")
        return {}

    async def _run(self, cmd: list[str], stdin: bytes = b"") -> tuple[int | None, bytes, bytes]:
        try:
            return await run_in(self.client, self.container_id, cmd, stdin=stdin, user=self.user,
                                max_output=MAX_FILE + 4096, timeout=60)
        except TerminalError as exc:
            raise RpcError(SERVER_ERROR, str(exc)) from None

    # ---- terminals

    async def create_terminal(self, params: dict[str, Any]) -> dict[str, Any]:
        command, args = params.get("command"), params.get("args") or []
        if not isinstance(command, str) or not command or "\x00" in command:
            raise RpcError(INVALID_PARAMS, "command must be a program name or path")
        if not isinstance(args, list) or len(args) > MAX_ARGS or not all(
                isinstance(a, str) and "\x00" not in a for a in args):
            raise RpcError(INVALID_PARAMS, f"args must be up to {MAX_ARGS} texts")
        env = {}
        for item in params.get("env") or []:
            if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value"), str):
                if item["name"] and "=" not in item["name"] and "\x00" not in item["name"] + item["value"]:
                    env[item["name"]] = item["value"]
        cwd = params.get("cwd")
        if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/") or "\x00" in cwd):
            raise RpcError(INVALID_PARAMS, "cwd must be an absolute path inside the agent's container")
        limit = min(_count(params, "outputByteLimit") or MAX_TERMINAL_OUTPUT, MAX_TERMINAL_OUTPUT)
        if len(self._terminals) >= MAX_TERMINALS:
            raise RpcError(SERVER_ERROR, f"{MAX_TERMINALS} terminals are open; release one first")
        tid = f"term-{next(self._ids)}"
        term = Terminal(limit)  # before the process: its first output may come with the exec's answer
        ended = asyncio.Event()
        try:
            # with no args the command is a shell command line (Claude Code's adapter sends its Bash
            # tool's command whole), run by the container's sh; with args it is the program
            argv = [command, *args] if args else ["/bin/sh", "-c", command]
            pipe = await open_pipe(self.client, self.container_id, argv, env=env, user=self.user,
                                   workdir=cwd or self.workdir, on_stdout=term.take, on_stderr=term.take,
                                   on_close=ended.set)
        except TerminalError as exc:
            raise RpcError(SERVER_ERROR, str(exc)) from None
        term.pipe = pipe
        self._terminals[tid] = term
        pipe.close_stdin()
        self._watch(term, ended)
        return {"terminalId": tid}

    def _watch(self, term: Terminal, ended: asyncio.Event) -> None:
        async def finish() -> None:
            await ended.wait()
            await self._finish(term)

        task = asyncio.get_running_loop().create_task(finish())
        self._waiters.add(task)
        task.add_done_callback(self._waiters.discard)

    async def _finish(self, term: Terminal) -> None:
        assert term.pipe is not None
        try:
            term.exit_code = await term.pipe.wait(5)
        except Exception:
            term.exit_code = None
        term.done.set()

    def _terminal(self, params: dict[str, Any]) -> Terminal:
        term = self._terminals.get(params.get("terminalId"))  # type: ignore[arg-type]
        if term is None:
            raise RpcError(INVALID_PARAMS, "no such terminal")
        return term

    @staticmethod
    def _status(term: Terminal) -> dict[str, Any] | None:
        return {"exitCode": term.exit_code, "signal": None} if term.done.is_set() else None

    async def terminal_output(self, params: dict[str, Any]) -> dict[str, Any]:
        term = self._terminal(params)
        return {"output": term.output.decode("utf-8", "replace"), "truncated": term.truncated,
                "exitStatus": self._status(term)}

    async def wait_for_terminal_exit(self, params: dict[str, Any]) -> dict[str, Any]:
        term = self._terminal(params)
        await term.done.wait()
        return {"exitCode": term.exit_code, "signal": None}

    async def kill_terminal(self, params: dict[str, Any]) -> dict[str, Any]:
        await self._end(self._terminal(params))
        return {}

    async def release_terminal(self, params: dict[str, Any]) -> dict[str, Any]:
        term = self._terminal(params)
        self._terminals.pop(params["terminalId"], None)
        await self._end(term)
        return {}

    @staticmethod
    async def _end(term: Terminal) -> None:
        if term.pipe is not None:
            await term.pipe.close()

    async def close(self) -> None:
        terminals, self._terminals = list(self._terminals.values()), {}
        for term in terminals:
            await self._end(term)
        for task in list(self._waiters):
            task.cancel()


def _why(err: bytes, code: int | None) -> str:
    text = err.decode("utf-8", "replace").strip().splitlines()
    return (text[-1] if text else f"exit code {code}")[:300]
