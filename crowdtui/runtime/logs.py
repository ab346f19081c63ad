"""Agent container logs: the last lines of one agent or of all agents merged, and following them.

Agents run with a TTY, so their logs are terminal output: escape sequences, carriage
returns. :func:`plain` turns a line into text fit for a log view or a pipe.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from crowdtui.runtime.containers import NoContainer, Runtime, _in_thread

# CSI ... final byte, OSC ... BEL/ST, other two-byte ESC sequences, then stray controls.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[P^_][^\x1b]*\x1b\\"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b[ -/]+[0-~]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain(text: str) -> str:
    """Terminal output as plain text: escape sequences and control characters removed.

    A carriage return inside a line (progress bars) keeps only what was written last.
    """
    text = _ESCAPES.sub("", text.rstrip("\r\n"))
    if "\r" in text:
        text = text.rsplit("\r", 1)[-1] or text.replace("\r", "")
    return _CONTROLS.sub("", text)


@dataclass(frozen=True)
class LogLine:
    agent: str
    text: str  # plain text, no newline
    at: str = ""  # the engine's RFC 3339 timestamp ("" if unknown)

    def format(self, width: int) -> str:
        """``name │ text`` with the name padded to ``width`` (for merged views)."""
        return f"{self.agent:<{width}} | {self.text}"


def _split_timestamp(raw: str) -> tuple[str, str]:
    stamp, sep, rest = raw.partition(" ")
    if sep and len(stamp) >= 20 and stamp[4] == "-" and stamp.endswith("Z"):
        return stamp, rest
    return "", raw


def _lines_of(agent: str, data: bytes) -> list[LogLine]:
    out = []
    for raw in data.decode("utf-8", errors="replace").split("\n"):
        if not raw:
            continue
        at, text = _split_timestamp(raw)
        out.append(LogLine(agent, plain(text), at))
    return out


def _targets(runtime: Runtime, names: Iterable[str] | None) -> list[tuple[str, object]]:
    """(agent, container) pairs; all of the workspace's agents when ``names`` is empty."""
    wanted = list(names or [])
    if not wanted:
        wanted = [info.name for info in runtime.list_sync()]
    pairs = []
    for name in wanted:
        container = runtime.container_sync(name)
        if container is None:
            raise NoContainer(f"agent {name} has no container, so no logs; start it with `crowdtui up {name}`")
        pairs.append((name, container))
    return pairs


def read_logs_sync(runtime: Runtime, names: Iterable[str] | None = None, *, tail: int = 100) -> list[LogLine]:
    """The last ``tail`` lines of each agent, merged in time order."""
    lines: list[LogLine] = []
    for name, container in _targets(runtime, names):
        data = container.logs(stdout=True, stderr=True, timestamps=True, tail=tail)
        lines.extend(_lines_of(name, data))
    lines.sort(key=lambda line: line.at)  # RFC 3339 with nanoseconds sorts as text
    return lines


async def read_logs(runtime: Runtime, names: Iterable[str] | None = None, *, tail: int = 100) -> list[LogLine]:
    return await _in_thread(lambda: read_logs_sync(runtime, names, tail=tail))


async def follow_logs(
    runtime: Runtime,
    names: Iterable[str] | None = None,
    *,
    tail: int = 10,
    stop_event: asyncio.Event | None = None,
) -> AsyncIterator[LogLine]:
    """The last ``tail`` lines, then every new line as it comes, from each agent (merged).

    Ends when ``stop_event`` is set, or when every followed container has stopped.
    """
    targets = await _in_thread(_targets, runtime, names)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
    streams: list = []
    lock = threading.Lock()
    closed = threading.Event()

    def pump(agent: str, container) -> None:
        buffer = b""
        try:
            stream = container.logs(stdout=True, stderr=True, stream=True, follow=True,
                                    timestamps=True, tail=tail)
            with lock:
                if closed.is_set():
                    stream.close()
                    return
                streams.append(stream)
            for chunk in stream:
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in _lines_of(agent, b"\n".join(complete)):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            if buffer:
                for line in _lines_of(agent, buffer):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
        except Exception:
            pass  # the stream was closed under us, or the container went away
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:
                pass

    threads = [threading.Thread(target=pump, args=pair, daemon=True, name=f"crowdtui-logs-{pair[0]}")
               for pair in targets]
    for t in threads:
        t.start()
    stopper = asyncio.create_task(stop_event.wait()) if stop_event else None
    live = len(threads)
    try:
        while live:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter} | ({stopper} if stopper else set()),
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                return
            item = getter.result()
            if item is None:
                live -= 1
                continue
            yield item
    finally:
        if stopper:
            stopper.cancel()
        closed.set()
        with lock:
            for stream in streams:
                try:
                    stream.close()
                except Exception:
                    pass


ARCHIVES_KEPT = 10  # per agent
ARCHIVE_LINES = 20_000  # the last lines of a container that are kept


def archive_logs(folder: Path, container) -> Path | None:
    """Write a container's output (plain text, with timestamps) to ``folder`` before it goes.

    Files are named ``<UTC time>-<container id>.log``; only the newest
    ``ARCHIVES_KEPT`` are kept. Returns the file, or None when there was no output.
    """
    data = container.logs(stdout=True, stderr=True, timestamps=True, tail=ARCHIVE_LINES)
    if not data:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    agent = folder.name
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"{stamp}-{container.id[:12]}.log"
    with open(path, "w", encoding="utf-8") as fh:
        for line in _lines_of(agent, data):
            fh.write(f"{line.at} {line.text}\n" if line.at else f"{line.text}\n")
    for old in sorted(folder.glob("*.log"))[:-ARCHIVES_KEPT]:
        old.unlink(missing_ok=True)
    return path


def archived_logs(folder: Path) -> list[Path]:
    """The archived output files of an agent, oldest first."""
    return sorted(folder.glob("*.log")) if folder.is_dir() else []
