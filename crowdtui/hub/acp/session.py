"""One agent in ``mode: acp``: its runner's Agent Client Protocol adapter running in the agent's
own container, and crowdtui as the adapter's client.

- The adapter is exec'd in the running container (same container, same hardening, same user,
  same egress) through ``crowd-entry``, which takes the model key from a one-shot secrets
  socket as at container start; its stdin/stdout carry the protocol, its stderr is kept
  (bounded) for diagnostics. The container's own terminal stays as it was: the raw terminal
  and the structured turns are two doors onto one agent.
- ``initialize`` offers fs and terminal capabilities; both are served inside the container
  (:mod:`crowdtui.hub.acp.in_container`), never on the host.
- ``session/new`` carries the working directory, the crowd MCP server through the agent's
  own door (``crowd-mcp-bridge`` inside the container, so the hub knows who calls) and the
  persona. The session id is stored (``qms.acp_sessions``); the next start loads it
  (``session/load``) or resumes it (``session/resume``) where the adapter advertises that,
  and says so in an ``acp.no_resume`` event when it cannot.
- ``session/request_permission`` waits in the crew's approval queue
  (:func:`crowdtui.hub.approvals.request_permission`); the answer chosen there goes back as
  the adapter's own option.
- ``session/update``s fold into a :class:`~crowdtui.hub.acp.conversation.Conversation`; each
  finished turn and each finished tool call is one event (``acp.turn``, ``acp.tool_call``).
"""

from __future__ import annotations

import asyncio
import collections
import difflib
import json
import logging
import time
from pathlib import Path
from typing import Any

from qms.acp_sessions import LOAD, NEITHER, RESUME, get_session, save_session

from crowdtui.hub.acp.connection import INVALID_PARAMS, METHOD_NOT_FOUND, Connection, ConnectionClosed, RpcError
from crowdtui.hub.acp.conversation import Conversation, ToolCall
from crowdtui.hub.acp.in_container import InContainer
from crowdtui.roster import AgentDef
from crowdtui.runners import runner_for, runner_settings
from crowdtui.runners.base import MCP_SERVER, SERVER_NAME
from crowdtui.runtime.container_spec import agent_user
from crowdtui.runtime.exec_pipe import ExecPipe, open_pipe

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
START_TIMEOUT = 120.0  # seconds for initialize and session/new (the adapter starts Claude Code)
MAX_STDERR = 64 * 1024
MAX_PROMPT = 256 * 1024
MAX_LOGGED_CALLS = 10_000  # acp.tool_call events per adapter run; past that, turns still say how many
KINDS = ("allow_once", "allow_always", "reject_once", "reject_always")  # ACP's permission option kinds
ENTRY = "crowd-entry"


class AcpUnavailable(RuntimeError):
    """The agent cannot be driven over ACP (no adapter, not running, the adapter failed)."""


def unified_diff(diffs: list[dict[str, str]], limit: int = 64 * 1024) -> str:
    """The tool call's diffs as one unified diff (what the approval queue shows)."""
    out: list[str] = []
    for d in diffs:
        path = d.get("path") or "file"
        old = (d.get("old") or "").splitlines(keepends=True)
        new = (d.get("new") or "").splitlines(keepends=True)
        out.extend(difflib.unified_diff(old, new, f"a{path}" if old else "/dev/null", f"b{path}"))
    text = "".join(line if line.endswith("\n") else line + "\n" for line in out)
    return text[:limit]


class AcpAgent:
    """Start with ``await AcpAgent(...).start()``; ``prompt(text)`` runs one turn."""

    def __init__(self, store: Any, runtime: Any, agent: AgentDef, *, config: dict | None = None,
                 permission_timeout: float | None = None, record: Path | None = None,
                 command: list[str] | None = None):
        self.store = store
        self.runtime = runtime
        self.agent = agent
        self.name = agent.name
        self.runner = runner_for(agent)
        self.settings = runner_settings(config, self.runner.name)
        self.permission_timeout = permission_timeout
        self.command = command  # instead of the runner's adapter (the tests' replayed stand-in agent)
        self.conversation = Conversation()
        self.conversation.listeners.append(self._on_entry)
        self.stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self.pipe: ExecPipe | None = None
        self.conn: Connection | None = None
        self.container: InContainer | None = None
        self.session_id: str | None = None
        self.how: str = ""  # new | loaded | resumed
        self.capabilities: dict[str, Any] = {}
        self.adapter = ""
        self.notes: list[str] = []  # what the console should say (e.g. a session could not be resumed)
        self._logged_calls: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._record = record.open("ab") if record is not None else None
        self.permissions_asked = 0
        self.turns = 0
        self._turn: asyncio.Task | None = None
        self.turn_listeners: list = []  # called with the stop reason when a turn started by start_turn ends

    # ---- starting

    @property
    def cwd(self) -> str:
        return self.runner.working_dir or "/home/agent"

    async def start(self) -> "AcpAgent":
        command = self.command or self.runner.acp_command(self.agent, self.settings)
        if not command:
            raise AcpUnavailable(f"runner {self.runner.name} of {self.name} has no ACP adapter; "
                                 "use mode: terminal")
        info = await self.runtime.info(self.name)
        if info is None or info.state != "running":
            raise AcpUnavailable(f"{self.name} is not running; start it first")
        effective = self.runtime.effective(self.agent)
        secrets = await self.runtime.reveal_secrets(effective)
        user = agent_user()
        self.container = InContainer(self.runtime.client, info.container_id, user=user, workdir=self.cwd)
        handoff = None
        env: dict[str, str] = {}
        if secrets:
            from crowdtui.runtime.secrets_handoff import SecretHandoff

            handoff = SecretHandoff(self.runtime.workspace.ipc_dir(self.name), secrets, agent=self.name)
            await asyncio.to_thread(handoff.open)
            env["CROWD_SECRETS"] = ",".join(sorted(secrets))
        self.conn = Connection(self._send, on_request=self._serve, on_notification=self._notify, tap=self._tap)
        try:
            self.pipe = await open_pipe(self.runtime.client, info.container_id, [ENTRY, *command], env=env,
                                        user=user, workdir=self.cwd, on_stdout=self.conn.feed,
                                        on_stderr=self._keep_stderr, on_close=self.conn.close)
            if handoff is not None:
                await asyncio.to_thread(handoff.serve, info.container_id)
        finally:
            if handoff is not None:
                handoff.close()
        try:
            await self._handshake()
        except Exception as exc:
            why = self.stderr_text()[-600:]
            await self.close()
            if isinstance(exc, (RpcError, asyncio.TimeoutError, ConnectionClosed)):
                raise AcpUnavailable(f"{self.name}'s ACP adapter did not start a session: {exc}"
                                     + (f"; it said: {why}" if why else "")) from None
            raise
        return self

    async def _handshake(self) -> None:
        assert self.conn is not None
        init = await self.conn.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION,
            "clientCapabilities": {"fs": {"readTextFile": True, "writeTextFile": True}, "terminal": True},
            "clientInfo": {"name": "crowdtui", "version": "1"},
        }, timeout=START_TIMEOUT)
        init = init if isinstance(init, dict) else {}
        caps = init.get("agentCapabilities") if isinstance(init.get("agentCapabilities"), dict) else {}
        self.capabilities = caps
        info = init.get("agentInfo") if isinstance(init.get("agentInfo"), dict) else {}
        self.adapter = f"{info.get('name', '?')} {info.get('version', '')}".strip()[:200]
        session_caps = caps.get("sessionCapabilities") if isinstance(caps.get("sessionCapabilities"), dict) else {}
        can = LOAD if caps.get("loadSession") is True else RESUME if "resume" in session_caps else NEITHER
        stored = await get_session(self.store, self.name)
        base = {"cwd": self.cwd, "mcpServers": [self._crowd_server()]}
        if stored is not None:
            if can == NEITHER:
                await self._cannot_resume(stored.session_id, "the adapter can neither load nor resume sessions")
            else:
                method = "session/load" if can == LOAD else "session/resume"
                self.session_id = stored.session_id  # session/load replays the history before it answers
                try:
                    await self.conn.request(method, {**base, "sessionId": stored.session_id,
                                                     "_meta": self._meta()}, timeout=START_TIMEOUT)
                except RpcError as exc:
                    self.session_id = None
                    self.conversation.entries.clear()
                    self.conversation.tool_calls.clear()
                    await self._cannot_resume(stored.session_id, f"{method} failed: {exc.message}")
                else:
                    self.how = "loaded" if can == LOAD else "resumed"
        if self.session_id is None:
            result = await self.conn.request("session/new", {**base, "_meta": self._meta()}, timeout=START_TIMEOUT)
            sid = result.get("sessionId") if isinstance(result, dict) else None
            if not isinstance(sid, str) or not sid or len(sid) > 200:
                raise RpcError(INVALID_PARAMS, "session/new gave no session id")
            self.session_id, self.how = sid, "new"
        await save_session(self.store, self.name, self.session_id, cwd=self.cwd, adapter=self.adapter, can_load=can,
                           how=self.how, actor=self.name)

    async def _cannot_resume(self, session_id: str, why: str) -> None:
        note = f"the earlier conversation ({session_id[:12]}) could not be resumed: {why}; a new one starts"
        self.notes.append(note)
        await self.store.append_event(self.name, "acp.no_resume", self.name, {"session": session_id, "reason": why})

    def _crowd_server(self) -> dict[str, Any]:
        """The crowd hub through the agent's own door: the bridge inside its container."""
        return {"name": SERVER_NAME, "command": MCP_SERVER["command"], "args": list(MCP_SERVER["args"]), "env": []}

    def _meta(self) -> dict[str, Any]:
        meta = getattr(self.runner, "acp_session_meta", None)
        return meta(self.agent) if meta is not None else {}

    # ---- turns

    async def prompt(self, text: str) -> str:
        """Run one turn with the operator's ``text``; returns the stop reason."""
        if self.conn is None or self.session_id is None or self.conn.closed:
            raise AcpUnavailable(f"{self.name} has no ACP session; start it again")
        text = text[:MAX_PROMPT]
        self.conversation.say("user", text)
        started = time.monotonic()
        before = set(self.conversation.tool_calls)
        try:
            result = await self.conn.request("session/prompt", {
                "sessionId": self.session_id, "prompt": [{"type": "text", "text": text}]})
            stop = str((result or {}).get("stopReason") or "end_turn")[:40] if isinstance(result, dict) else "end_turn"
        except RpcError as exc:
            stop = "error"
            self.notes.append(f"the turn failed: {exc.message}")
        await self._drain()
        for call in self.conversation.tool_calls.values():
            if call.id not in before:
                await self._log_call(call, final=True)
        self.turns += 1
        await self.store.append_event(self.name, "acp.turn", self.name, {
            "stop": stop, "prompt": text[:200], "seconds": round(time.monotonic() - started, 2),
            "tool_calls": len(set(self.conversation.tool_calls) - before)})
        return stop

    def start_turn(self, text: str) -> asyncio.Task:
        """Run :meth:`prompt` as the agent's own task (not a view's: a view that goes away while
        the turn runs does not end the turn); ``busy`` while it runs, ``turn_listeners`` called
        with the stop reason (or ``error``) when it ends."""
        if self.busy:
            raise AcpUnavailable(f"{self.name} is in a turn already; wait or cancel it")
        task = asyncio.get_running_loop().create_task(self.prompt(text))
        self._turn = task

        def ended(t: asyncio.Task) -> None:
            if t.cancelled():
                stop = "cancelled"
            elif t.exception() is not None:
                stop = "error"
                self.notes.append(f"the turn failed: {t.exception()}")
            else:
                stop = t.result()
            for listener in list(self.turn_listeners):
                listener(stop)

        task.add_done_callback(ended)
        return task

    @property
    def busy(self) -> bool:
        return self._turn is not None and not self._turn.done()

    def cancel(self) -> None:
        """Ask the adapter to stop the turn (it answers the prompt with stopReason cancelled)."""
        if self.conn is not None and self.session_id is not None:
            self.conn.notify("session/cancel", {"sessionId": self.session_id})

    # ---- what the adapter sends

    def _notify(self, method: str, params: dict[str, Any]) -> None:
        if method != "session/update" or params.get("sessionId") != self.session_id:
            return
        update = params.get("update")
        if isinstance(update, dict):
            self.conversation.apply(update)

    def _on_entry(self, entry: Any) -> None:
        if isinstance(entry, ToolCall) and entry.finished and entry.id not in self._logged_calls:
            self._spawn(self._log_call(entry))

    async def _log_call(self, call: ToolCall, final: bool = False) -> None:
        if call.id in self._logged_calls or (not call.finished and not final):
            return
        if len(self._logged_calls) >= MAX_LOGGED_CALLS:  # a flood of tool calls is not a flood of events
            return
        self._logged_calls.add(call.id)
        await self.store.append_event(self.name, "acp.tool_call", call.title[:200] or call.tool or call.kind, {
            "status": call.status, "kind": call.kind, "tool": call.tool, "id": call.id[:100]})

    async def _serve(self, method: str, params: dict[str, Any]) -> Any:
        if params.get("sessionId") != self.session_id:
            raise RpcError(INVALID_PARAMS, "unknown session")
        assert self.container is not None
        handlers = {
            "session/request_permission": self._permission,
            "fs/read_text_file": self.container.read_text_file,
            "fs/write_text_file": self.container.write_text_file,
            "terminal/create": self.container.create_terminal,
            "terminal/output": self.container.terminal_output,
            "terminal/wait_for_exit": self.container.wait_for_terminal_exit,
            "terminal/kill": self.container.kill_terminal,
            "terminal/release": self.container.release_terminal,
        }
        handler = handlers.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, f"{method} is not served by crowdtui")
        return await handler(params)

    async def _permission(self, params: dict[str, Any]) -> dict[str, Any]:
        from crowdtui.hub.approvals import request_permission

        self.permissions_asked += 1
        wire = params.get("toolCall") if isinstance(params.get("toolCall"), dict) else {}
        options = [o for o in (params.get("options") or []) if isinstance(o, dict)
                   and isinstance(o.get("optionId"), str) and isinstance(o.get("kind"), str)][:16]
        tid = wire.get("toolCallId")
        call = self.conversation.tool_calls.get(tid) if isinstance(tid, str) else None
        if call is None and isinstance(tid, str):
            call = self.conversation.apply({**wire, "sessionUpdate": "tool_call"})  # type: ignore[assignment]
        title = str(wire.get("title") or (call.title if call else "") or "a tool call")[:500]
        tool = (call.tool or call.kind) if call is not None else "tool"
        raw = wire.get("rawInput", call.raw_input if call is not None else None)
        detail = raw if isinstance(raw, dict) else ({"input": raw} if raw is not None else None)
        diff = unified_diff(call.diffs()) if call is not None else ""
        offered = [o["kind"] for o in options if o["kind"] in KINDS]
        decision = await request_permission(self.store, agent=self.name, tool=tool, title=title, diff=diff or None,
                                            detail=detail, timeout=self.permission_timeout,
                                            options=list(dict.fromkeys(offered)) or None)
        outcome = decision.outcome
        if not decision.allowed and call is not None and not call.finished:
            # the tool will not run; some agents (Gemini CLI) send no update for a refused call
            self.conversation.apply({"sessionUpdate": "tool_call_update", "toolCallId": call.id, "status": "failed"})
        if outcome == "cancelled":
            return {"outcome": {"outcome": "cancelled"}}
        wanted = {"expired": ["reject_once"], "allow_always": ["allow_always", "allow_once"],
                  "reject_always": ["reject_always", "reject_once"]}.get(outcome, [outcome])
        wanted += ["allow_once", "allow_always"] if decision.allowed else ["reject_once", "reject_always"]
        for kind in wanted:
            for option in options:
                if option["kind"] == kind:
                    return {"outcome": {"outcome": "selected", "optionId": option["optionId"]}}
        return {"outcome": {"outcome": "cancelled"}}  # the adapter offered nothing that says the answer

    # ---- plumbing

    def _send(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.write(data)

    def _tap(self, direction: str, line: bytes) -> None:
        if self._record is not None:
            self._record.write(json.dumps({"dir": direction, "line": line.decode("utf-8", "replace").rstrip("\n")},
                                          ensure_ascii=False).encode() + b"\n")
            self._record.flush()

    def _keep_stderr(self, data: bytes) -> None:
        self.stderr.append(data)
        self._stderr_size += len(data)
        while self._stderr_size > MAX_STDERR and len(self.stderr) > 1:
            self._stderr_size -= len(self.stderr.popleft())

    def stderr_text(self) -> str:
        return b"".join(self.stderr).decode("utf-8", "replace")

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def alive(self) -> bool:
        return self.conn is not None and not self.conn.closed

    async def close(self) -> None:
        """End the adapter (the container and its terminal keep running)."""
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        if self.conn is not None:
            self.conn.close()
        if self.pipe is not None:
            await self.pipe.close()
        if self.container is not None:
            await self.container.close()
        await self._drain()
        if self._record is not None:
            self._record.close()
            self._record = None
