"""Routes (7): the ordered match expressions that pick the agent for a chat message.
n adds, K / J move the highlighted route up / down, D removes it; A / X approve or reject an
agent's pending (wide) route."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from rich.text import Text
from textual.binding import Binding

from crowdtui.tui.screens.form import Field
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.store_table import StoreTableView, cell
from qms.names import OPERATOR


class RoutesView(StoreTableView):
    TITLE = "Routes"
    HINT = "tried top to bottom · n add  K up  J down  D remove  A/X approve/reject pending"
    EMPTY = "none: every chat message is held for you (6)"
    COLUMNS = [("position", "#", 3), ("id", "id", 4), ("agent", "agent", None), ("owner", "owner", None),
               ("state", "state", 8), ("match", "match", None)]
    KINDS = frozenset({"route"})
    BINDINGS = [
        Binding("n", "add", "add route"),
        Binding("K", "move(-1)", "up"),
        Binding("J", "move(1)", "down"),
        Binding("D", "remove", "remove"),
        Binding("A", "decide(True)", "approve pending"),
        Binding("X", "decide(False)", "reject pending"),
    ]

    async def load(self) -> list[Any]:
        from crowdtui.dispatch.routes import list_routes

        return await list_routes(self.app.store)

    def key(self, item: Any) -> str:
        return str(item.id)

    def cells(self, r: Any) -> list[Text]:
        return [Text(str(r.position)), Text(str(r.id)), cell(r.agent, "bold"), cell(r.owner),
                Text(r.state, "yellow" if r.state == "pending" else ""), cell(r.match)]

    def action_add(self) -> None:
        self.act(self.add)

    async def add(self) -> bool:
        from crowdtui.dispatch.routes import add_route, check_match

        vals = await self.ask("Add a route", [
            Field("match", "match (e.g. platform=telegram room=-100* sender=*)", required=True),
            Field("agent", "to agent", required=True),
            Field("position", "position (empty: last)")])
        if vals is None:
            return False
        store = self.app.store

        async def write() -> Any:
            check_match(vals["match"])
            if await store.get_agent(vals["agent"].strip()) is None:
                raise ValueError(f"no agent named {inert(vals['agent'])!r} is registered")
            pos = vals["position"].strip()
            if pos and not pos.isdigit():
                raise ValueError(f"position must be a number, not {inert(pos)!r}")
            return await add_route(store, vals["match"], vals["agent"].strip(), actor=OPERATOR,
                                   position=int(pos) if pos else None, now=time.time())
        return await self.write(lambda r: f"route {r.id} added at {r.position}", write)

    def action_move(self, step: int) -> None:
        route = self.chosen("route")
        if route is not None:
            self.act(partial(self.move, route, route.position + step))

    async def move(self, route: Any, position: int) -> bool:
        from crowdtui.dispatch.routes import move_route

        if position < 1:
            return False
        return await self.write(lambda r: f"route {r.id} now at {r.position}",
                                lambda: move_route(self.app.store, route.id, position, actor=OPERATOR))

    def action_remove(self) -> None:
        route = self.chosen("route")
        if route is not None:
            self.act(partial(self.remove, route))

    async def remove(self, route: Any) -> bool:
        from crowdtui.dispatch.routes import remove_route

        if await self.ask(f"Remove route {route.id} ({inert(route.match)} -> {inert(route.agent)})? "
                          "ctrl+s confirms", []) is None:
            return False
        return await self.write(lambda r: f"route {r.id} removed",
                                lambda: remove_route(self.app.store, route.id, actor=OPERATOR))

    def action_decide(self, approve: bool) -> None:
        route = self.chosen("route")
        if route is not None:
            self.act(partial(self.decide, route, approve))

    async def decide(self, route: Any, approve: bool) -> bool:
        from crowdtui.dispatch.routes import decide_pending

        return await self.write(lambda r: f"route {r.id} " + ("approved" if approve else "rejected and removed"),
                                lambda: decide_pending(self.app.store, route.id, approve, actor=OPERATOR))
