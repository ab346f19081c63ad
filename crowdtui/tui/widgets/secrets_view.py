"""Secrets (0): names and when each was set — never a value. n sets one (its value typed
into a hidden field, stored encrypted), D removes the highlighted one."""

from __future__ import annotations

from functools import partial
from typing import Any

from rich.text import Text
from textual.binding import Binding

from crowdtui.tui.screens.form import Field
from crowdtui.tui.text import inert
from crowdtui.tui.widgets.store_table import StoreTableView, cell
from qms.names import OPERATOR


class SecretsView(StoreTableView):
    TITLE = "Secrets"
    HINT = "names only · n set (hidden)  D remove"
    EMPTY = "none: n sets one"
    COLUMNS = [("name", "name", None), ("updated", "updated", 10)]
    KINDS = frozenset({"secret"})
    BINDINGS = [
        Binding("n", "set", "set secret"),
        Binding("D", "remove", "remove"),
    ]

    def vault(self) -> Any:
        from crowdtui.secrets import Vault

        app: Any = self.app
        return Vault.open(app.workspace, app.store)

    async def load(self) -> list[Any]:
        from qms.secrets import secret_names  # what Vault.names reads: no key needed to list

        return await secret_names(self.app.store)

    def key(self, item: Any) -> str:
        return item[0]

    def cells(self, item: Any) -> list[Text]:
        return [cell(item[0], "bold"), Text(self.when(item[1]))]

    def action_set(self) -> None:
        self.act(self.set_secret)

    async def set_secret(self) -> bool:
        from crowdtui.secrets import validate_secret_name

        current = self.current
        vals = await self.ask("Set a secret (the value is hidden, stored encrypted)", [
            Field("name", "name", value=current[0] if current else ""),
            Field("value", "value", required=True, password=True)])
        if vals is None:
            return False
        name = vals["name"].strip()

        async def write() -> None:
            validate_secret_name(name)
            await self.vault().set(name, vals["value"], actor=OPERATOR)
        return await self.write(f"secret {inert(name)} stored (encrypted)", write)

    def action_remove(self) -> None:
        item = self.chosen("secret")
        if item is not None:
            self.act(partial(self.remove, item[0]))

    async def remove(self, name: str) -> bool:
        if await self.ask(f"Remove secret {inert(name)}? ctrl+s confirms", []) is None:
            return False
        return await self.write(f"secret {inert(name)} removed",
                                lambda: self.vault().remove(name, actor=OPERATOR))
