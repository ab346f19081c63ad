"""Dispatch, the chat side: routing, outbound delivery, channel health and the scheduler, as one object.

``Dispatch(store)`` does nothing by itself; ``await dispatch.start()`` runs its loops
(router, outbound sender, health poller, scheduler) until ``await dispatch.stop()``.
Each step is also a public method so tests can drive it with a manual clock.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from qms import channels as chans
from qms import outbound
from qms.errors import InvalidInput, PermissionDenied
from qms.inbound import chat_agents
from qms.messages import check_body
from qms.names import OPERATOR, validate_name
from qms.writer import Gathering

from crowdtui.dispatch import tasks
from crowdtui.dispatch.clock import Clock, SystemClock
from crowdtui.dispatch.inbound import InboundMsg, arrivals, store_inbound
from crowdtui.dispatch.router import Router

MAX_REPLY_BYTES = 32 * 1024
MAX_GROUP = 256  # inbound messages committed together at most


def stderr_log(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} dispatch: {line}", file=sys.stderr, flush=True)


@dataclass
class DispatchConfig:
    health_interval: float = 5.0  # seconds between health polls of each channel
    health_failures: int = 3  # polls failed in a row before a channel is deregistered
    outbound_attempts: int = outbound.MAX_ATTEMPTS
    callback_timeout: float = 5.0
    scheduler_interval: float = 1.0  # the longest the scheduler sleeps
    # where the operator answers permission requests (crowd.toml [approvals] operator_chats,
    # match expressions; crowdtui.dispatch.approval_chat): commands there, announcements to them
    operator_chats: tuple[str, ...] = ()


class Dispatch:
    def __init__(self, store, *, clock: Clock | None = None, config: DispatchConfig | None = None,
                 stop_agent: Callable[[str], Awaitable[Any]] | None = None,
                 delivered: Callable[[str], Awaitable[Any]] | None = None,
                 log: Callable[[str], None] = stderr_log) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.config = config or DispatchConfig()
        self.log = log
        from crowdtui.dispatch.approval_chat import operator_chats

        self.router = Router(store, self.clock.now, stop_agent=stop_agent, delivered=delivered, log=log,
                             operator_chats=operator_chats({"operator_chats": list(self.config.operator_chats)}))
        self._route_wake = asyncio.Event()
        self._send_wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._http = None
        self.sent = 0
        self._intake: Gathering | None = None  # the inbound transaction queued and still taking messages
        self._answering: set[asyncio.Task] = set()
        self.channel_epoch = 0  # bumped whenever channels change (API token cache)
        from crowdtui.dispatch.approval_chat import Announcer, announce_chats

        chats = announce_chats(self.router.operator_chats)
        self.announcer = Announcer(store, chats, now=self.clock.now, wake=self._send_wake.set) if chats else None

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        import httpx

        self._http = httpx.AsyncClient(timeout=self.config.callback_timeout, trust_env=False)
        interrupted = await tasks.recover_runs(self.store)
        if interrupted:
            self.log(f"{interrupted} task run(s) were interrupted by the last stop")
        self._route_wake.set()  # route whatever was stored before a crash
        self._send_wake.set()
        loops = [("router", self._router_loop), ("outbound", self._outbound_loop),
                 ("health", self._health_loop), ("scheduler", self._scheduler_loop)]
        if self.announcer is not None:
            await self.announcer.start()  # requests from now on (before the loop, so none slips by)
            loops.append(("approvals", self.announcer.run))
        for name, loop in loops:
            self._tasks.append(asyncio.create_task(self._guard(name, loop), name=f"dispatch-{name}"))

    async def stop(self) -> None:
        if self._answering:
            await asyncio.gather(*self._answering, return_exceptions=True)  # answer who is waiting
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _guard(self, name: str, loop) -> None:
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a loop never dies for good: log, wait, go on
                self.log(f"{name} loop error: {type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)

    # --- channels ---------------------------------------------------------------

    async def register(self, *, name: str, platform: str, callback_url: str, prefixes: list[str],
                       callback_token: str = "") -> tuple[chans.Channel, str]:
        ch, token = await chans.register_channel(
            self.store, name=name, platform=platform, callback_url=callback_url, prefixes=prefixes,
            now=self.clock.now(), callback_token=callback_token)
        self.log(f"channel {name} registered ({platform}, {callback_url}, prefixes {', '.join(prefixes)})")
        self.channel_epoch += 1
        self._send_wake.set()  # replies may have been waiting for it
        return ch, token

    async def receive(self, channel: chans.Channel, msg: InboundMsg) -> tuple[int, bool]:
        """Store one inbound message (durable when this returns) and route it.

        Messages arriving together share one transaction (group commit), in which they
        are routed too when no older message waits for the router (``Router.take_in``):
        each caller still returns only after the commit that holds its message. The
        transaction is queued with the first of them and takes whoever comes until the
        writer's thread starts it.
        """
        fut = asyncio.get_running_loop().create_future()
        item = (channel, msg, fut)
        if self._intake is None or not self._intake.add(item):
            intake = Gathering([item], MAX_GROUP)
            taking = self.router.take_in(lambda: arrivals([(c, m) for c, m, _ in intake.take()]),
                                         now=self.clock.now())
            self._intake = intake
            task = asyncio.create_task(self._answer(intake, taking), name="dispatch-inbound-commit")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        return await fut

    async def _answer(self, intake: Gathering, taking: Awaitable) -> None:
        """Answer the senders of ``intake`` once its transaction ended."""
        queued = self.router.queued
        try:
            results, left = await taking
        except Exception:  # redo one by one, so only the bad message fails; the loop routes them
            for c, m, fut in intake.take():  # (closed now, if the writer never started it)
                try:
                    result = await store_inbound(self.store, c, m, now=self.clock.now())
                except Exception as exc:
                    if not fut.done():
                        fut.set_exception(exc)
                else:
                    if not fut.done():
                        fut.set_result(result)
            self._route_wake.set()
            return
        if left:
            self._route_wake.set()
        elif self.router.queued != queued:
            self._send_wake.set()  # typing notices and command answers queued with the routing
        for (_, _, fut), result in zip(intake.items, results):
            if not fut.done():
                fut.set_result(result)

    # --- replies ----------------------------------------------------------------

    async def may_reply(self, agent: str, chat: str) -> bool:
        """The operator may reply anywhere; an agent only to chats routed to it or its children."""
        if agent == OPERATOR:
            return True
        reached = await chat_agents(self.store, chat)
        for name in reached:
            seen = set()
            while name and name not in seen:
                if name == agent:
                    return True
                seen.add(name)
                a = await self.store.get_agent(name)
                name = a.parent if a else None
        return False

    async def reply(self, agent: str, chat: str, text: str, *, reply_to: str | None = None) -> int:
        """Queue ``text`` for ``chat`` from ``agent``; returns the outbound id."""
        validate_name(agent)
        if not isinstance(chat, str) or not chat or len(chat) > 200:
            raise InvalidInput("chat must be the chat id the message came with (e.g. local:alice)")
        check_body(text, "reply text")
        if not text.strip():
            raise InvalidInput("reply text is empty; say something")
        if len(text.encode()) > MAX_REPLY_BYTES:
            raise InvalidInput(f"reply text is over {MAX_REPLY_BYTES} bytes; split it")
        if not await self.may_reply(agent, chat):
            raise PermissionDenied(
                f"{agent} may not reply to chat {chat!r}: it was not routed to {agent} or its children")
        oid = await outbound.enqueue(self.store, chat=chat, text=text, agent=agent,
                                     now=self.clock.now(), reply_to=reply_to)
        self._send_wake.set()
        return oid

    async def typing(self, agent: str, chat: str) -> int:
        if not await self.may_reply(agent, chat):
            raise PermissionDenied(f"{agent} may not write to chat {chat!r}")
        oid = await outbound.enqueue(self.store, chat=chat, text="", agent=agent,
                                     now=self.clock.now(), kind="typing")
        self._send_wake.set()
        return oid

    # --- steps (each loop runs one; tests call them directly) ------------------------

    async def route_pending(self) -> int:
        return await self.router.route_pending()

    async def send_due(self) -> int:
        """Try every due outbound item once; returns how many texts were delivered
        (typing notices are sent too, but not counted)."""
        now = self.clock.now()
        delivered = 0
        stalled: set[str] = set()  # a chat whose earlier item failed: keep its order, try later
        for item in await outbound.due(self.store, now):
            if item.chat in stalled:
                continue
            ch = await chans.channel_for_chat(self.store, item.chat)
            if ch is None:
                stalled.add(item.chat)
                state = await outbound.mark_failed(
                    self.store, item.id, "no live channel owns this chat", now,
                    max_attempts=self.config.outbound_attempts)
                if state == "failed":
                    self.log(f"outbound {item.id} to {item.chat} dropped: no channel owns it")
                continue
            err = await self._post(ch, "/send" if item.kind == "send" else "/typing", {
                "id": item.id, "chat": item.chat, "text": item.text, "reply_to": item.reply_to,
                "from": item.agent})
            if err is None:
                await outbound.mark_sent(self.store, item.id, ch.name, self.clock.now())
                if item.kind == "send":
                    delivered += 1
                    self.sent += 1
            else:
                stalled.add(item.chat)
                state = await outbound.mark_failed(self.store, item.id, err, self.clock.now(),
                                                   max_attempts=self.config.outbound_attempts)
                self.log(f"outbound {item.id} to {ch.name}: {err} ({state})")
        return delivered

    async def _post(self, ch: chans.Channel, path: str, body: dict) -> str | None:
        assert self._http is not None, "dispatch not started"
        headers = {"Authorization": f"Bearer {ch.callback_token}"} if ch.callback_token else {}
        try:
            r = await self._http.post(ch.callback_url.rstrip("/") + path, json=body, headers=headers)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code} {r.text[:200]}"

    async def poll_health(self) -> list[chans.Channel]:
        """GET each live channel's /health once; returns the channels that went down."""
        assert self._http is not None, "dispatch not started"
        down = []
        for ch in await chans.list_channels(self.store):
            try:
                r = await self._http.get(ch.callback_url.rstrip("/") + "/health")
                ok = r.status_code == 200
            except Exception:
                ok = False
            after = await chans.record_health(self.store, ch.name, ok, now=self.clock.now(),
                                              max_failures=self.config.health_failures)
            if after.state == "down" and ch.state == "up":
                self.channel_epoch += 1
                self.log(f"channel {ch.name} deregistered: {after.failures} failed health checks")
                down.append(after)
        return down

    async def run_due_tasks(self) -> list[tasks.Run]:
        async def send(task: tasks.Task) -> str:
            msgs = await self.store.send_message(task.created_by, task.agent, task.text,
                                                 thread=f"task:{task.name}")
            return f"message {msgs[0].id}"

        runs = await tasks.fire_due(self.store, self.clock.now(), send)
        if self.router.delivered and any(r.outcome == "sent" for r in runs):
            by_id = {t.id: t.agent for t in await tasks.list_tasks(self.store)}
            await self.router.finish([], [(self.router.delivered, by_id[r.task_id])
                                           for r in runs if r.outcome == "sent" and r.task_id in by_id])
        for run in runs:
            self.log(f"task run {run.id}: {run.outcome} {run.detail}"
                     + (f" ({run.missed} missed run(s) folded in)" if run.missed else ""))
        return runs

    # --- loops --------------------------------------------------------------------

    async def _router_loop(self) -> None:
        self._route_wake.set()  # (re)started: look for work left behind
        while True:
            try:  # woken by each new message; the timeout picks up rows released elsewhere
                await asyncio.wait_for(self._route_wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            self._route_wake.clear()
            queued = self.router.queued
            await self.route_pending()
            if self.router.queued != queued:
                self._send_wake.set()  # typing notices, command answers and refusals queued

    async def _outbound_loop(self) -> None:
        while True:
            await self.send_due()
            nxt = await outbound.next_due_at(self.store)
            wait = 5.0 if nxt is None else max(0.05, min(5.0, nxt - self.clock.now()))
            try:
                await asyncio.wait_for(self._send_wake.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            self._send_wake.clear()

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            await self.poll_health()

    async def _scheduler_loop(self) -> None:
        while True:
            await self.run_due_tasks()
            nxt = await tasks.next_due_at(self.store)
            wait = self.config.scheduler_interval if nxt is None else nxt - self.clock.now()
            await asyncio.sleep(max(0.05, min(self.config.scheduler_interval, wait)))
