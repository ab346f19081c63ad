"""Agent container logs: the last lines of one agent or of all agents merged, and following them.

Agents run with a TTY, so their logs are terminal output: escape sequences, carriage
returns. :func:`plain` turns a line into text fit for a log view or a pipe.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable

from crowdtui.runtime.containers import NoContainer, Runtime
from crowdtui.runtime.log_lines import (  # noqa: F401 (LogLine, plain, archived_logs: this module's API too)
    LogLine, archived_logs, lines_of, plain,
)
from crowdtui.runtime.threads import in_thread


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
        lines.extend(lines_of(name, data))
    lines.sort(key=lambda line: line.at)  # RFC 3339 with nanoseconds sorts as text
    return lines


async def read_logs(runtime: Runtime, names: Iterable[str] | None = None, *, tail: int = 100) -> list[LogLine]:
    return await in_thread(lambda: read_logs_sync(runtime, names, tail=tail))


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
    targets = await in_thread(_targets, runtime, names)
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
                for line in lines_of(agent, b"\n".join(complete)):
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            if buffer:
                for line in lines_of(agent, buffer):
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
