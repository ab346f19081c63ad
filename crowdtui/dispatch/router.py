"""The routing loop: stored inbound messages to agents' inboxes, in arrival order.

The router takes rows still ``new`` (:mod:`qms.inbound`) and, for each, in ONE
transaction: puts the message in the chosen agent's inbox (or holds it, or answers a
command) and marks the row done. So a crash anywhere leaves every acknowledged message
either untouched (routed on restart) or routed, never both. Decisions are
:func:`crowdtui.dispatch.matching.decide`'s; the rows, inboxes and replies are the store's.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from qms import inbound as inbound_rows
from qms import outbound
from qms.errors import QmsError
from qms.event_rows import add_event
from qms.inbound import Arrival, StoredInbound
from qms.messages import deliver_many_tx
from qms.names import DISPATCH
from qms.registry import agent_names_tx

from crowdtui.dispatch import approval_chat
from crowdtui.dispatch.matching import Decision, Expression, Incoming, decide
from crowdtui.dispatch.routes import list_routes, list_routes_tx

_HEADER_SAFE = str.maketrans({"|": "/", "[": "(", "]": ")"})

Hook = Callable[..., Awaitable[Any]]
After = list[tuple[Hook, str]]


def message_body(row: StoredInbound, text: str) -> str:
    who = row.sender_name or row.sender or "someone"
    if row.sender and row.sender_name and row.sender != row.sender_name:
        who = f"{row.sender_name} ({row.sender})"
    who = who.translate(_HEADER_SAFE)  # a sender's name cannot forge header fields
    lines = [f"[chat {row.chat} | from {who} | ref {row.channel}/{row.msg_id}]", text]
    for a in row.attachments:
        lines.append(f"attachment: {a.get('name') or 'file'} {a['url']}")
    lines.append(f'(answer with reply(chat="{row.chat}", text=...))')
    return "\n".join(lines)


@dataclass
class Router:
    """Routes stored inbound rows. ``stop_agent(name)`` backs ``/stop``;
    ``delivered(name)`` is told after an agent got a message (launch policies)."""

    store: Any
    now: Callable[[], float]
    stop_agent: Hook | None = None
    delivered: Hook | None = None
    log: Callable[[str], None] = lambda line: None
    typing: bool = True  # tell the chat the agent is at work when a message reaches it
    counts: dict = field(default_factory=lambda: {"routed": 0, "held": 0, "command": 0, "refused": 0})
    # the operator's chats (crowd.toml [approvals] operator_chats): approval commands there
    # answer permission requests, whatever the routes say (crowdtui.dispatch.approval_chat)
    operator_chats: tuple[Expression, ...] = ()
    queued: int = 0  # outbound items (typing notices, answers) queued so far, committed or not

    async def route_pending(self, limit: int = 200) -> int:
        """Route every stored, not yet routed message in arrival order; returns how many.

        Rows go in batches, one transaction each; if a batch meets an error (say, an
        agent was removed), its rows are redone one by one so only the bad one is refused.
        """
        done = 0
        while True:
            batch = await inbound_rows.new_inbound(self.store, limit)
            if not batch:
                return done
            routes = await list_routes(self.store)
            agents = {a.name for a in await self.store.list_agents()}
            try:
                await self._route_batch(batch, routes, agents)
            except QmsError:
                for row in batch:
                    await self.route_one(row, routes, agents)
            done += len(batch)

    async def _route_batch(self, batch: list[StoredInbound], routes, agents) -> None:
        sticky = await inbound_rows.stickies(self.store, {r.chat for r in batch})
        after: After = []

        def tx(conn: sqlite3.Connection) -> list[str | None]:
            mine = inbound_rows.still_new_tx(conn, [r.seq for r in batch])  # another router may have taken some
            return self._route_tx(conn, [r for r in batch if r.seq in mine], routes, agents, sticky, after)

        statuses = await self.store.write_sync(tx)
        await self.finish(statuses, after)

    def _route_tx(self, conn: sqlite3.Connection, rows: list[StoredInbound], routes, agents,
                  sticky: dict[str, str], after: After) -> list[str]:
        """Route ``rows`` (still new, in arrival order) inside the open transaction: each is
        decided in order (a sticky chat or ``/new`` decides the rows after it), then the
        deliveries go in together (one INSERT for the messages, one for their events) and
        the rest one by one."""
        decided: list[tuple[StoredInbound, Decision, str | None]] = []
        for row in rows:
            current = sticky.get(row.chat)
            d = self._decide(row, routes, agents, current)
            decided.append((row, d, current))
            if d.kind == "sticky":
                sticky[row.chat] = d.agent
            elif d.kind == "command" and d.command == "new":
                sticky.pop(row.chat, None)
        self._deliver_tx(conn, [(row, d) for row, d, _ in decided if d.kind == "deliver"], after)
        return ["routed" if d.kind == "deliver" else self._apply_tx(conn, row, d, current, after)
                for row, d, current in decided]

    def _deliver_tx(self, conn: sqlite3.Connection, rows: list[tuple[StoredInbound, Decision]], after: After) -> None:
        """Put each row's message in its agent's inbox, mark the rows routed, and record each
        (chat, agent) reached once."""
        if not rows:
            return
        now = self.now()
        ids = deliver_many_tx(conn, self.store, [(row.channel, d.agent, message_body(row, d.text), row.chat)
                                                 for row, d in rows])
        inbound_rows.mark_many_tx(conn, [(row.seq, "routed", d.agent, d.how or "", [mid])
                                         for (row, d), mid in zip(rows, ids)])
        reached = {(row.chat, d.agent): now for row, d in rows}
        inbound_rows.reached_many_tx(conn, [(chat, agent, at) for (chat, agent), at in reached.items()])
        if self.typing:  # show the chat the agent at work until its reply comes
            for chat, agent in reached:
                self._enqueue_tx(conn, chat=chat, text="", agent=agent, now=now, kind="typing")
        if self.delivered:
            after.extend((self.delivered, d.agent) for _, d in rows)

    def _enqueue_tx(self, conn: sqlite3.Connection, **item) -> None:
        outbound.enqueue_tx(conn, self.store, **item)
        self.queued += 1  # the sender looks at its queue when this moved (a rollback only wakes it for nothing)

    def take_in(self, collect: Callable[[], list[Arrival]],
                now: float) -> Awaitable[tuple[list[tuple[int, bool]], bool]]:
        """Store the arrivals ``collect()`` gives as the transaction starts, and route them in the same transaction (one fsync for both),
        unless older messages still wait for the routing loop (then arrival order says
        they go first, and these are only stored). Awaiting the result gives (seq, newly
        stored) for each and whether some were left for the loop. If routing meets an
        error, the messages are stored all the same and left for the loop (which redoes
        them one by one). The write is queued before this returns."""
        after: After = []

        def tx(conn: sqlite3.Connection) -> tuple[list[tuple[int, bool]], list[str] | None]:
            arrivals = collect()
            backlog = inbound_rows.any_new_tx(conn)
            results = inbound_rows.store_arrivals_tx(conn, arrivals, now)
            rows = [inbound_rows.stored_arrival(a, seq, now) for a, (seq, new) in zip(arrivals, results) if new]
            if backlog or not rows:
                return results, None
            # the routes, agents and sticky chats as this transaction sees them: one trip to
            # the writer's thread for the whole batch, and no decision on a stale read
            routes, agents = list_routes_tx(conn), agent_names_tx(conn)
            sticky = inbound_rows.stickies_tx(conn, {r.chat for r in rows})
            conn.execute("SAVEPOINT route")
            try:
                statuses = self._route_tx(conn, rows, routes, agents, sticky, after)
            except QmsError:
                conn.execute("ROLLBACK TO route")
                after.clear()
                statuses = None
            conn.execute("RELEASE route")
            return results, statuses

        return self._took_in(self.store.submit(tx), after)

    async def _took_in(self, written: "asyncio.Future", after: After) -> tuple[list[tuple[int, bool]], bool]:
        results, statuses = await asyncio.shield(written)
        if statuses is not None:
            await self.finish(statuses, after)
        left = statuses is None and any(new for _, new in results)
        return results, left

    def _decide(self, row: StoredInbound, routes, agents, sticky) -> Decision:
        msg = Incoming(row.chat, row.text, platform=row.platform, room=row.room, sender=row.sender)
        if self.operator_chats:
            command = approval_chat.decide_command(msg, self.operator_chats)
            if command is not None:
                return command
        return decide(msg, routes, sticky=sticky, agents=agents)

    async def finish(self, statuses, after: After) -> None:
        """Count what was done and run the after-commit hooks (launch, stop) once per agent."""
        for status in statuses:
            if status is not None:
                self.counts[status if status in self.counts else "routed"] += 1
        seen = set()
        for hook, name in after:
            if (hook, name) in seen:
                continue
            seen.add((hook, name))
            try:
                await hook(name)
            except Exception as exc:  # routing is done; a failed launch or stop is logged
                self.log(f"{getattr(hook, '__name__', 'hook')} {name}: {exc}")

    async def route_one(self, row: StoredInbound, routes, agents) -> Decision:
        sticky = (await inbound_rows.stickies(self.store, {row.chat})).get(row.chat)
        d = self._decide(row, routes, agents, sticky)
        after: After = []

        def tx(conn: sqlite3.Connection) -> str | None:
            if not inbound_rows.still_new_tx(conn, [row.seq]):
                return None  # another router took it
            return self._apply_tx(conn, row, d, sticky, after)

        try:
            status = await self.store.write_sync(tx)
        except QmsError as exc:  # e.g. the agent was removed: refuse, tell the chat, move on
            after.clear()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

            def refuse(conn: sqlite3.Connection) -> None:
                if inbound_rows.refuse_tx(conn, row.seq, d.agent, reason):
                    self._say(conn, row, f"could not deliver: {reason}")

            await self.store.write_sync(refuse)
            status = "refused"
            self.log(f"inbound {row.channel}/{row.msg_id} refused: {reason}")
        await self.finish([status], after)
        return d

    def _apply_tx(self, conn: sqlite3.Connection, row: StoredInbound, d: Decision, sticky, after: After) -> str:
        """Carry out ``d`` for ``row`` (still new) inside the open transaction; returns the row's status."""
        if d.kind == "deliver":
            self._deliver_tx(conn, [(row, d)], after)
            return "routed"
        status, detail = "command", d.how
        if d.kind == "hold":
            status, detail = "held", d.reason
            add_event(conn, self.store, DISPATCH, "onboard.held", row.chat,
                      {"channel": row.channel, "sender": row.sender, "msg": row.msg_id})
        elif d.kind == "sticky":
            inbound_rows.set_sticky_tx(conn, row.chat, d.agent, self.now())
            self._say(conn, row, f"now talking to {d.agent}; /new goes back to the routes")
        elif d.kind == "command":
            detail = d.command
            self._say(conn, row, self._command(conn, row, d, sticky, after))
        else:  # error
            status, detail = "refused", d.reason
            self._say(conn, row, d.reason)
        inbound_rows.mark_tx(conn, row.seq, status, d.agent, detail or "")
        return status

    def _command(self, conn: sqlite3.Connection, row: StoredInbound, d: Decision, sticky, after: After) -> str:
        if (d.command or "").startswith("approval:"):
            return approval_chat.command_tx(conn, self.store, d, row.chat, self.now(), after)
        if d.command == "new":
            inbound_rows.clear_sticky_tx(conn, row.chat)
            return f"sticky agent cleared; the routes choose again (now {d.extra.get('route_agent', d.agent)})"
        if d.command == "who":
            how = "sticky" if sticky and sticky == d.agent else "route"
            return f"you are talking to {d.agent} ({how})"
        if self.stop_agent is None:
            return f"cannot stop {d.agent}: no Docker runtime on this host"
        after.append((self.stop_agent, d.agent))
        return f"stopping {d.agent}"

    def _say(self, conn: sqlite3.Connection, row: StoredInbound, text: str) -> None:
        self._enqueue_tx(conn, chat=row.chat, text=text, agent=DISPATCH, now=self.now(), reply_to=row.msg_id)
