"""Claude Code as a crew member: the real claude-code image, the real ``claude`` binary in its
terminal (not print mode), driven by the Anthropic stand-in reached only through the agent's
egress proxy."""

from __future__ import annotations

import asyncio
import os
import json
import re
import socket
import time

import pytest

from crowdtui.hub.hub import Hub
from crowdtui.roster import load_roster, sync_roster
from crowdtui.runtime.containers import Runtime
from tests.standins.anthropic import AnthropicStandIn, Turn, last_user_text, system_text
from tests.waiting import wait_for

pytestmark = pytest.mark.docker

KEY = "sk-ant-test-" + "k3y" * 12  # a fake key: it must appear nowhere but in the agent's process
MODEL = "claude-sonnet-4-5"
PERSONA = "You are Quill, the crew's careful editor (persona marker 7f3a)."
# The stand-in listens on a loopback address that is not in the container's NO_PROXY
# (localhost, 127.0.0.1): Claude Code's requests go to the forwarder and the hub's egress
# proxy, which connects it because the egress entry names it exactly.
STANDIN_HOST = "127.0.0.2"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_agent(ws, port: int, **extra) -> None:
    folder = ws.agents_dir / "quill"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["---", "name: quill", "runner: claude-code", f"model: {MODEL}", "tools: [mcp__crowd]",
             f"base_url: http://{STANDIN_HOST}:{port}", "resources: {memory: 1g, pids: 512}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    (folder / "AGENT.md").write_text("\n".join(lines + ["---", PERSONA, ""]))


ANSI = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78c])")


class Screen:
    """Every byte the agent's terminal printed since we attached (through crowdtui's PtySession)."""

    def __init__(self):
        self.data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.data += chunk

    def text(self) -> str:
        return ANSI.sub(b"", bytes(self.data)).decode("utf-8", "replace")


@pytest.fixture
async def crew(workspace, store, claude_image, docker_client):
    """quill (runner: claude-code) defined, its key in the vault, a hub; yields a starter."""
    from crowdtui.runtime.pty import SessionPool
    from crowdtui.secrets import Vault

    port = free_port(STANDIN_HOST)
    write_agent(workspace, port)
    roster = load_roster(workspace)
    assert not roster.errors, roster.problems
    await sync_roster(store, roster)
    await Vault.open(workspace, store).set("ANTHROPIC_API_KEY", KEY)
    hub = Hub(workspace, store)
    await hub.start()
    runtime = Runtime(workspace, store=store)
    pool = SessionPool(docker_client)
    yield {"port": port, "roster": roster, "hub": hub, "runtime": runtime, "pool": pool}
    try:
        await pool.close()
        await runtime.remove("quill")
    finally:
        await hub.stop()


async def start_quill(crew):
    """Start quill; attach like the console does (a viewer, a resize) and wait for the prompt."""
    await crew["hub"].open_door("quill")
    info = await crew["runtime"].start(crew["roster"].get("quill"))
    container = await crew["runtime"].container("quill")
    session = await crew["pool"].get(info.container_id)
    screen = Screen()
    session.add_viewer(screen.feed, replay=True)
    await session.resize_now(40, 120)

    async def ready():
        text = screen.text()
        return "shift+tab" in text or "for shortcuts" in text

    try:
        await wait_for(ready, 60, "Claude Code's prompt")
    except AssertionError:
        await asyncio.to_thread(container.reload)
        raise AssertionError(f"no prompt; {container.status}; screen: {screen.text()[-2000:]!r}") from None
    return info, container, screen


async def test_claude_mcp_list_no_network_and_the_key_nowhere(crew, workspace, store, docker_client):
    standin = AnthropicStandIn([], host=STANDIN_HOST, port=crew["port"]).start()
    try:
        info, container, screen = await start_quill(crew)
        code, out = await asyncio.to_thread(container.exec_run, ["claude", "mcp", "list"], user="1000:1000",
                                            workdir="/workspace", environment={"HOME": "/home/agent"})
        text = out.decode()
        assert code == 0, text
        assert "crowd: crowd-mcp-bridge" in text and "Connected" in text, text
        code, out = await asyncio.to_thread(container.exec_run, ["ls", "/sys/class/net"])
        assert out.decode().split() == ["lo"]
        attrs = docker_client.api.inspect_container(info.container_id)
        assert attrs["HostConfig"]["NetworkMode"] == "none"
        assert KEY not in json.dumps(attrs)
        assert KEY not in (await asyncio.to_thread(container.logs)).decode("utf-8", "replace")
        since = attrs["Created"]
        events = docker_client.api.events(since=int(time.time()) - 600, until=int(time.time()), decode=True)
        assert KEY not in json.dumps(list(events)), since
        for e in await store.events_after(0, limit=100000):
            assert KEY not in json.dumps([e.kind, e.subject, e.detail], default=str)
        for path in workspace.crowd_dir.glob("crowd.db*"):
            assert KEY.encode() not in path.read_bytes()
        # nothing of the key was written into the home either (no "approved keys" list)
        home = workspace.home_dir("quill")
        for f in (home / ".claude.json", home / ".claude" / "settings.json"):
            assert KEY[-20:] not in f.read_text()
    finally:
        standin.stop()


async def test_operator_message_drives_a_real_claude_code_turn_through_the_hub(crew, workspace, store,
                                                                               docker_client):
    from crowdtui.hub.announce import Announcer, pty_typist
    from crowdtui.hub.directory import Directory, roster_definitions
    doc = await store.create_document("operator", "SOP", "Style guide", "v1 by the operator\n")
    turns = [
        Turn(name="get", when="call get_messages", tool="mcp__crowd__get_messages", input={}),
        Turn(name="checkout", when="toolu_get", tool="mcp__crowd__checkout_document", input={"doc_id": doc.id}),
        Turn(name="checkin", when="toolu_checkout", tool="mcp__crowd__checkin_document",
             input={"doc_id": doc.id, "content": "v2 by quill\n", "note": "tightened"}),
        Turn(name="reply", when="toolu_checkin", tool="mcp__crowd__send_message",
             input={"to": "operator", "body": f"{doc.id} is now v2"}),
        Turn(name="done", when="toolu_reply", text="Done: the style guide is updated."),
    ]
    standin = AnthropicStandIn(turns, host=STANDIN_HOST, port=crew["port"]).start()
    pool = crew["pool"]
    announcer = None
    try:
        info, container, screen = await start_quill(crew)
        directory = Directory(store, roster_definitions(workspace))
        announcer = asyncio.create_task(Announcer(store, directory, pty_typist(crew["runtime"], pool),
                                                  min_interval=0.5).run())
        await asyncio.sleep(1)
        await store.send_message("operator", "quill", f"please update {doc.id}: make it tighter")

        async def replied():
            return [m for m in await store.inbox("operator") if m.sender == "quill"]

        try:
            [reply] = await wait_for(replied, 120, "quill's answer")
        except AssertionError:
            raise AssertionError(f"used: {[t.name for t in turns if t.used]}; screen: "
                                 f"{screen.text()[-1500:]!r}") from None
        assert reply.body == f"{doc.id} is now v2"
        # in a thread: the hub answering quill's last call runs on this loop
        assert await asyncio.to_thread(standin.wait_used, len(turns), 60), [last_user_text(r["body"])[-300:] for r in standin.main_requests()]
        latest = await store.get_document(doc.id)
        assert (latest.version, latest.content, latest.holder) == (2, "v2 by quill\n", None)
        assert [v.author for v in await store.versions(doc.id)] == ["operator", "quill"]
        calls = [e.subject for e in await store.events_after(0, limit=100000, kinds=["hub.call"]) if e.actor == "quill"]
        for tool in ("get_messages", "checkout_document", "checkin_document", "send_message"):
            assert tool in calls, calls
        main = standin.main_requests()
        assert main and all(r["body"]["model"] == MODEL for r in main)
        assert all(PERSONA in system_text(r["body"]) for r in main)
        # the hub's typed notice started the turn: the first turn's request carries it
        assert "[crowd] 1 new message from operator: call get_messages" in json.dumps(main[0]["body"]["messages"])
        # the inbox item was read through the tool (the body reached the model in a tool result)
        assert any(f"please update {doc.id}" in json.dumps(r["body"]["messages"]) for r in main)
        egress = [e for e in await store.events_after(0, limit=100000, kinds=["egress.allowed"])
                  if e.detail.get("agent") == "quill"]
        assert egress and {e.detail["host"] for e in egress} == {STANDIN_HOST}
    finally:
        if announcer is not None:
            announcer.cancel()
        standin.stop()


def tmux_screen(data: bytes, rows: int, cols: int, tmp_path) -> dict:
    """The screen tmux shows after the same bytes (a private server; output post-processing
    off, so the bytes reach tmux as the container's terminal sent them)."""
    import subprocess

    sock = f"crowdtui-cc-{os.getpid()}"
    stream, conf = tmp_path / "stream.bin", tmp_path / "tmux.conf"
    stream.write_bytes(data)
    conf.write_text("set -g status off\nset -g escape-time 0\nset -g history-limit 0\n")

    def tmux(*args: str) -> str:
        done = subprocess.run(["tmux", "-L", sock, "-f", str(conf), *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    tmux("new-session", "-d", "-s", "cc", "-x", str(cols), "-y", str(rows),
         f"stty -opost -echo; cat {stream}; touch {stream}.done; sleep 60")
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "stream.bin.done").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        capture = tmux("capture-pane", "-e", "-p", "-N", "-t", "cc")
        x, y, visible, alternate = tmux("display", "-p", "-t", "cc",
                                        "#{cursor_x} #{cursor_y} #{cursor_flag} #{alternate_on}").split()
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
    return {"rows": rows, "cols": cols, "capture": capture.split("\n")[:rows],
            "cursor": {"x": int(x), "y": int(y), "visible": visible == "1"}, "alternate": alternate == "1"}


async def test_claude_code_screen_in_the_console_terminal_equals_tmux(crew, tmp_path):
    """Claude Code's own bytes (synchronized output, bracketed paste, focus and keyboard-protocol
    queries), taken from the shared PTY session, give the console's emulator the screen tmux gives."""
    from crowdtui.terminal import Emulator
    from tests.terminal.expected_screens import emulator_cells, parse_capture, same_cell

    standin = AnthropicStandIn([Turn(name="t", when="tell me", text="Here is **one** answer,\nover two lines.")],
                               host=STANDIN_HOST, port=crew["port"]).start()
    try:
        info, container, screen = await start_quill(crew)
        session = await crew["pool"].get(info.container_id)
        session.write(b"tell me something")
        await asyncio.sleep(0.5)
        session.write(b"\r")
        await wait_for(lambda: standin.wait_used(1, 0), 60, "the turn")
        await asyncio.sleep(2)  # let it finish drawing the answer
        data = bytes(screen.data)
    finally:
        standin.stop()
    rows, cols = 40, 120
    expected = await asyncio.to_thread(tmux_screen, data, rows, cols, tmp_path)
    emu = Emulator(rows, cols)
    emu.feed(data)
    want = parse_capture(expected["capture"], rows, cols)
    got = emulator_cells(emu)
    differ = [(y, x, got[y][x], want[y][x])
              for y in range(rows) for x in range(cols) if not same_cell(got[y][x], want[y][x])]
    assert not differ, f"{len(differ)} cells differ, first: {differ[:5]}"
    assert "Here is" in "\n".join(expected["capture"])  # the answer is on the screen compared
    assert emu.cursor == (expected["cursor"]["x"], expected["cursor"]["y"])
    assert emu.alternate == expected["alternate"]


async def test_a_permission_prompt_counts_as_needs_me(workspace, store, claude_image, docker_client):
    """A tool the definition did not pre-approve stops Claude Code at its permission prompt; the
    console's attention watch (fed the same terminal bytes) says the agent waits for the operator."""
    from crowdtui.runtime.pty import SessionPool
    from crowdtui.secrets import Vault
    from crowdtui.tui.attention import AttentionWatch

    port = free_port(STANDIN_HOST)
    write_agent(workspace, port, permission_mode="default")
    roster = load_roster(workspace)
    assert not roster.errors, roster.problems
    await sync_roster(store, roster)
    await Vault.open(workspace, store).set("ANTHROPIC_API_KEY", KEY)
    hub = Hub(workspace, store)
    await hub.start()
    crew = {"port": port, "roster": roster, "hub": hub, "runtime": Runtime(workspace, store=store),
            "pool": SessionPool(docker_client)}
    standin = AnthropicStandIn([Turn(name="b", when="make a file", tool="Bash",
                                     input={"command": "touch /tmp/made-by-quill", "description": "make a file"})],
                               host=STANDIN_HOST, port=port).start()
    try:
        info, container, screen = await start_quill(crew)
        watch = AttentionWatch(idle_after=3600)
        watch.prime(bytes(screen.data), 0)
        seen = len(screen.data)
        session = await crew["pool"].get(info.container_id)
        session.write(b"make a file")
        await asyncio.sleep(0.5)
        session.write(b"\r")

        async def asked():
            nonlocal seen
            chunk = bytes(screen.data[seen:])
            seen += len(chunk)
            watch.feed(chunk, 1)
            return watch.reason(2) == "rang the bell" and "proceed?" in screen.text()

        try:
            await wait_for(asked, 60, "the permission prompt and its bell")
        except AssertionError:
            raise AssertionError(f"screen: {screen.text()[-1500:]!r}") from None
        code, _ = await asyncio.to_thread(container.exec_run, ["test", "-e", "/tmp/made-by-quill"])
        assert code != 0  # nothing ran before the operator answered
    finally:
        standin.stop()
        await crew["pool"].close()
        await crew["runtime"].remove("quill")
        await hub.stop()


def screen_lines(data: bytes, rows: int = 40, cols: int = 120) -> list[str]:
    """The screen as the console's emulator shows it, line by line."""
    from crowdtui.terminal import Emulator

    emu = Emulator(rows, cols)
    emu.feed(data)
    return ["".join(c.data for c in emu.line(y)).rstrip() for y in range(rows)]


async def test_the_notice_keeps_a_half_typed_operator_line(crew, store):
    """The operator has typed half a line into Claude Code's prompt when a message arrives: the
    hub's notice is submitted on its own, and the operator's draft is back in the prompt after."""
    from crowdtui.hub.announce import Announcer, pty_typist
    from crowdtui.hub.directory import Directory, roster_definitions

    standin = AnthropicStandIn([Turn(name="n", when="call get_messages", text="Noted, reading later.")],
                               host=STANDIN_HOST, port=crew["port"]).start()
    announcer = None
    try:
        info, container, screen = await start_quill(crew)
        session = await crew["pool"].get(info.container_id)
        session.write(b"half typed by the operator")
        await asyncio.sleep(1)
        directory = Directory(store, roster_definitions(crew["hub"].workspace))
        announcer = asyncio.create_task(Announcer(store, directory, pty_typist(crew["runtime"], crew["pool"]),
                                                  min_interval=0.5).run())
        await asyncio.sleep(0.5)
        await store.send_message("operator", "quill", "a message while you type")
        await wait_for(lambda: standin.wait_used(1, 0), 60, "the notice's turn")
        [first] = standin.main_requests()[:1]
        asked = last_user_text(first["body"])
        assert "[crowd] 1 new message from operator: call get_messages" in asked
        assert "half typed" not in asked

        async def draft_back():
            lines = screen_lines(bytes(screen.data))
            return any("Noted, reading later." in ln for ln in lines) and \
                any(ln.startswith("❯") and "half typed by the operator" in ln for ln in lines)

        try:
            await wait_for(draft_back, 30, "the draft back in the prompt")
        except AssertionError:
            raise AssertionError("\n".join(screen_lines(bytes(screen.data)))) from None
    finally:
        if announcer is not None:
            announcer.cancel()
        standin.stop()
