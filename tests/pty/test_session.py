"""Shared terminal sessions against the real engine."""

from __future__ import annotations

import asyncio
import re

import pytest

from crowdtui.runtime.pty import BACKLOG_BYTES, PtySession, SessionPool, TerminalError, open_exec

WAIT = 20.0


class Screen:
    """What one viewer received, with a way to wait for text in it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()

    def on_output(self, data: bytes) -> None:
        self.data += data
        self._changed.set()

    def on_close(self) -> None:
        self.closed.set()

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    async def wait_for(self, pattern: str, start: int = 0) -> re.Match:
        async def loop():
            while True:
                m = re.search(pattern, self.data[start:].decode("utf-8", "replace"))
                if m:
                    return m
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(loop(), WAIT)
        except TimeoutError:
            raise AssertionError(f"{pattern!r} never arrived; got {self.text[-500:]!r}") from None


def running(container) -> bool:
    container.reload()
    return container.status == "running"


async def test_two_viewers_share_output_and_both_can_type(start_container, docker_client):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    a, b = Screen(), Screen()
    va = session.add_viewer(a.on_output, a.on_close)
    vb = session.add_viewer(b.on_output, b.on_close)
    assert session.viewers == 2

    va.write(b"echo from-a-$((40+2))\r")
    await a.wait_for("from-a-42")
    await b.wait_for("from-a-42")
    vb.write(b"echo from-b-$((50+5))\r")
    await a.wait_for("from-b-55")
    await b.wait_for("from-b-55")
    assert bytes(a.data) == bytes(b.data)
    await session.close()
    assert running(c)


async def test_a_resize_from_a_viewer_reaches_the_program(start_container, docker_client):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output)
    for rows, cols in ((20, 70), (33, 101)):
        viewer.resize(rows, cols)
        await session.resize_now(rows, cols)
        mark = len(screen.data)
        viewer.write(b"stty size\r")
        await screen.wait_for(rf"[\r\n]{rows} {cols}\r\n", mark)
    # a burst of resizes ends at the last one
    for cols in range(60, 90):
        viewer.resize(25, cols)
    await session.resize_now(25, 89)
    mark = len(screen.data)
    viewer.write(b"stty size\r")
    await screen.wait_for(r"[\r\n]25 89\r\n", mark)
    await session.close()


async def test_detaching_leaves_the_agent_running_and_a_new_viewer_gets_the_backlog(
    start_container, docker_client
):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    first, second = Screen(), Screen()
    v1 = session.add_viewer(first.on_output, first.on_close)
    v2 = session.add_viewer(second.on_output, second.on_close)
    v1.write(b"echo before-$((1+1))\r")
    await first.wait_for("before-2")
    v1.close()
    assert session.viewers == 1 and not first.closed.is_set()
    v1.write(b"echo ignored\r")  # a closed viewer types nothing
    v2.write(b"echo after-$((2+2))\r")
    await second.wait_for("after-4")
    assert "after-4" not in first.text and "ignored" not in second.text

    late = Screen()
    session.add_viewer(late.on_output, replay=True)
    assert b"before-2" in session.backlog and b"after-4" in session.backlog
    assert bytes(late.data) == session.backlog

    await session.close()
    assert second.closed.is_set()  # the session ended for its viewers...
    assert running(c)  # ...but not the agent
    again = await PtySession.open(docker_client, c.id)
    screen = Screen()
    again.add_viewer(screen.on_output).write(b"echo still-$((3*3))\r")
    await screen.wait_for("still-9")
    await again.close()


async def test_backlog_keeps_the_last_64k_and_every_byte_reaches_viewers(start_container, docker_client):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output)
    viewer.write(b"stty -echo; head -c 300000 /dev/zero | tr '\\0' x; echo; echo END-$((7*6))\r")
    await screen.wait_for("END-42")
    assert screen.text.count("x") >= 300000
    assert len(session.backlog) == BACKLOG_BYTES
    assert session.backlog == bytes(screen.data[-BACKLOG_BYTES:])
    await session.close()


async def test_large_input_is_queued_not_lost(start_container, docker_client):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output)
    # the markers are computed by the shell, so the echoed command line does not match them
    viewer.write(b"stty raw -echo; echo READY-$((20+22)); echo GOT-$(head -c 500000 | wc -c)-$((6*7)); "
                 b"stty sane\r")
    await screen.wait_for(r"READY-42")  # the tty is raw now: no line limit drops input
    seen = len(screen.data)
    viewer.write(b"y" * 500000)  # far more than a socket buffer: the rest waits for the writer
    await screen.wait_for(r"GOT-\s*500000-42", start=seen)
    await session.close()


async def test_utf8_split_across_reads_arrives_intact(start_container, docker_client):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output)
    chunks: list[bytes] = []
    session.add_viewer(chunks.append)
    # octal escapes, so the command line echoed back does not contain the characters
    viewer.write(b"for i in $(seq 2000); do printf '\\303\\251\\342\\202\\254\\360\\237\\231\\202'; "
                 b"done; echo; echo DONE-$((1+1))\r")
    await screen.wait_for("DONE-2")
    assert screen.text.count("é€🙂") == 2000  # bytes are passed unchanged, in order
    assert b"".join(chunks) == bytes(screen.data)
    await session.close()


async def test_the_session_closes_when_the_container_stops(start_container, docker_client):
    c = start_container("lead")
    session = await PtySession.open(docker_client, c.id)
    screen = Screen()
    session.add_viewer(screen.on_output, screen.on_close)
    session.write(b"exit 0\r")
    await asyncio.wait_for(session.wait_closed(), WAIT)
    assert session.closed and screen.closed.is_set()
    session.write(b"nothing happens\r")  # writing to a closed session is a no-op
    late = Screen()
    viewer = session.add_viewer(late.on_output, late.on_close)
    await asyncio.wait_for(late.closed.wait(), WAIT)
    assert viewer.closed


async def test_stopped_and_ttyless_containers_are_refused_clearly(start_container, docker_client):
    stopped = start_container("lead", ["true"])
    stopped.wait(timeout=WAIT)
    with pytest.raises(TerminalError, match=r"is not running \(exited\); start it first"):
        await PtySession.open(docker_client, stopped.id)
    plain = start_container("qa", ["sleep", "60"], tty=False)
    with pytest.raises(TerminalError, match="has no terminal"):
        await PtySession.open(docker_client, plain.id)
    with pytest.raises(TerminalError, match="no longer exists"):
        await PtySession.open(docker_client, "0" * 64)


async def test_pool_shares_one_session_per_container_and_reopens(start_container, docker_client):
    c1, c2 = start_container("lead"), start_container("qa")
    pool = SessionPool(docker_client)
    try:
        s1, s1b = await asyncio.gather(pool.get(c1.id), pool.get(c1.id))
        assert s1 is s1b
        s2 = await pool.get(c2.id)
        assert s2 is not s1 and pool.peek(c2.id) is s2
        await s1.close()
        assert pool.peek(c1.id) is None
        s1c = await pool.get(c1.id)
        assert s1c is not s1 and not s1c.closed
        screen = Screen()
        s1c.add_viewer(screen.on_output).write(b"echo reopened\r")
        await screen.wait_for("reopened")
    finally:
        await pool.close()
    assert running(c1) and running(c2)


async def test_exec_opens_a_bash_shell_with_its_own_size(start_container, docker_client):
    c = start_container("lead", ["sleep", "infinity"])
    session = await open_exec(docker_client, c.id, rows=30, cols=90)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output, screen.on_close)
    viewer.write(b"echo shell=$0 bash=${BASH_VERSION%%.*}; stty size\r")
    await screen.wait_for(r"shell=bash bash=5")
    await screen.wait_for(r"[\r\n]30 90\r\n")
    viewer.resize(40, 120)
    await session.resize_now(40, 120)
    mark = len(screen.data)
    viewer.write(b"stty size; exit 7\r")
    await screen.wait_for(r"[\r\n]40 120\r\n", mark)
    await asyncio.wait_for(session.wait_closed(), WAIT)
    assert screen.closed.is_set()
    code = None
    for _ in range(100):
        code = await session.exit_code()
        if code is not None:
            break
        await asyncio.sleep(0.05)
    assert code == 7
    assert running(c)


async def test_exec_runs_a_given_command(start_container, docker_client):
    c = start_container("lead", ["sleep", "infinity"])
    session = await open_exec(docker_client, c.id, ["sh", "-c", "tty; id -un"])
    screen = Screen()
    session.add_viewer(screen.on_output, replay=True)  # it may all be over already
    await asyncio.wait_for(session.wait_closed(), WAIT)
    assert re.search(r"/dev/pts/\d+\r\nagent\r\n", screen.text), screen.text
    stopped = start_container("qa", ["true"])
    stopped.wait(timeout=WAIT)
    with pytest.raises(TerminalError, match="is not running"):
        await open_exec(docker_client, stopped.id)


def processes(container) -> str:
    """Command lines of the processes in the container (the image has no ps)."""
    script = 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done'
    return container.exec_run(["sh", "-c", script]).output.decode()


async def test_closing_an_exec_ends_what_it_runs(start_container, docker_client):
    c = start_container("lead", ["sleep", "infinity"])
    session = await open_exec(docker_client, c.id)
    screen = Screen()
    viewer = session.add_viewer(screen.on_output, screen.on_close)
    viewer.write(b"sleep 4242 & sleep 4343\r")
    for _ in range(100):
        if "sleep 4343" in processes(c):
            break
        await asyncio.sleep(0.05)
    assert "sleep 4242" in processes(c) and "sleep 4343" in processes(c)
    await session.close()
    assert screen.closed.is_set()
    assert await session.exit_code() is not None
    left = processes(c)
    assert "sleep 4242" not in left and "sleep 4343" not in left and "bash" not in left
    assert running(c)
