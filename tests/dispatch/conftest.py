"""Fixtures for dispatch tests: a real store file, a manual clock, a recording channel."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from crowdtui.dispatch.clock import ManualClock
from crowdtui.dispatch.http_server import LocalServer
from crowdtui.dispatch.service import Dispatch, DispatchConfig

T0 = datetime(2026, 11, 22, 4, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    for name, parent in (("lead", None), ("helper", "lead"), ("qa", None)):
        await s.upsert_agent(name, path=name if parent is None else f"{parent}/{name}",
                             tier=0 if parent is None else 1, parent=parent)
    yield s
    await s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def dispatch(store, clock):
    lines: list[str] = []
    eng = Dispatch(store, clock=clock, config=DispatchConfig(health_failures=2, outbound_attempts=3),
                 log=lines.append)
    eng.lines = lines  # type: ignore[attr-defined]
    import httpx

    eng._http = httpx.AsyncClient(timeout=10, trust_env=False)  # steps only, no loops
    yield eng
    await eng.stop()


class RecordingChannel:
    """A channel's callback side on 127.0.0.1: records /send and /typing, health switchable."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.typing: list[dict] = []
        self.auth: list[str] = []
        self.healthy = True
        self.fail_sends = 0
        self.got = asyncio.Event()

        async def send(request: Request):
            self.auth.append(request.headers.get("authorization", ""))
            if self.fail_sends:
                self.fail_sends -= 1
                return JSONResponse({"error": "busy"}, status_code=503)
            self.sent.append(await request.json())
            self.got.set()
            return JSONResponse({"ok": True})

        async def typing(request: Request):
            self.typing.append(await request.json())
            return JSONResponse({"ok": True})

        async def health(request: Request):
            return JSONResponse({"ok": self.healthy}, status_code=200 if self.healthy else 503)

        self.server = LocalServer(Starlette(routes=[
            Route("/send", send, methods=["POST"]),
            Route("/typing", typing, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]))

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
async def channel():
    ch = RecordingChannel()
    await ch.server.start()
    yield ch
    await ch.server.stop()
