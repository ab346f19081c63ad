"""Channels (9): the chat channels registered with the dispatcher, their health (up or down,
failed health checks, last good check) and the last message each brought in."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from crowdtui.tui.widgets.store_table import StoreTableView, cell


class ChannelsView(StoreTableView):
    TITLE = "Channels"
    HINT = "health and last message; channels register themselves with `crowdtui serve`"
    EMPTY = "none registered (start one beside `crowdtui serve`, e.g. `crowdtui channel local`)"
    COLUMNS = [("name", "name", None), ("state", "health", 6), ("platform", "platform", None),
               ("failures", "fails", 5), ("ok", "last ok", 8), ("chats", "chats", None),
               ("last", "last message", None)]
    KINDS = frozenset({"channel", "inbound", "chat", "onboard"})

    async def load(self) -> list[Any]:
        from qms.channels import list_channels
        from qms.inbound import last_inbound

        store = self.app.store
        self.last = await last_inbound(store)
        return await list_channels(store, include_down=True)

    def key(self, item: Any) -> str:
        return item.name

    def cells(self, c: Any) -> list[Text]:
        msg = getattr(self, "last", {}).get(c.name)
        last = f"{self.when(msg.received_at)} {msg.sender_name or msg.sender or '?'}: {msg.text[:50]}" if msg else "-"
        health = Text("up", "green") if c.state == "up" else Text(c.state, "bold white on red")
        return [cell(c.name, "bold"), health, cell(c.platform), Text(str(c.failures)),
                Text(self.when(c.last_ok_at)), cell(", ".join(c.prefixes)), cell(last)]
