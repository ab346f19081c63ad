"""A view over rows the store keeps (routes, scheduled tasks, channels, secrets): a title
line, a table, and the view's own keys. It reads and writes through the same store and
dispatch functions the CLI uses; it reloads when shown and when events of its kinds arrive."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from crowdtui.tui.screens.form import Field, FormScreen
from crowdtui.tui.text import inert, safe
from crowdtui.tui.widgets.column_widths import fit_widths
from crowdtui.tui.widgets.focus import focus_when_shown


class StoreTableView(Vertical):
    """Subclasses set TITLE, HINT, COLUMNS, KINDS and write ``load``, ``cells`` and ``key``."""

    DEFAULT_CSS = """
    StoreTableView { height: 1fr; }
    StoreTableView > .table-title { height: 1; background: $panel; padding: 0 1; }
    StoreTableView > DataTable { height: 1fr; }
    """
    TITLE = ""
    HINT = ""
    EMPTY = ""
    COLUMNS: list[tuple[str, str, int | None]] = []  # (key, label, width or None: as needed)
    KINDS: frozenset[str] = frozenset()  # event families (before the dot) that change the rows

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.items: list[Any] = []
        self.time_format: Callable[[Any], str] | None = None
        self._widths: list[int] = []

    def compose(self) -> ComposeResult:
        yield Static(classes="table-title")
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        self._columns(self._fit([]))
        self._title()

    def _fit(self, cells: list[list[Text]]) -> list[int]:
        return fit_widths([label for _, label, _ in self.COLUMNS], [w for _, _, w in self.COLUMNS], cells)

    def _columns(self, widths: list[int]) -> None:
        """The columns again, as wide as ``widths`` (the rows' cells need)."""
        table = self.query_one(DataTable)
        table.clear(columns=True)
        self._widths = widths
        for (key, label, _), width in zip(self.COLUMNS, widths):
            table.add_column(label, key=key, width=width)

    def on_show(self) -> None:
        focus_when_shown(self, self.query_one(DataTable))  # its keys work at once
        self.reload()

    async def load(self) -> list[Any]:
        raise NotImplementedError

    def cells(self, item: Any) -> list[Text]:
        raise NotImplementedError

    def key(self, item: Any) -> str:
        raise NotImplementedError

    def when(self, ts: float | None) -> str:
        if ts is None:
            return "-"
        fmt = self.time_format or getattr(self.app, "time_format", None)
        return fmt(ts) if fmt else str(ts)

    @work(exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        """Read the rows again (a busy store fails the worker: the app says so)."""
        self.show(await self.load())

    def show(self, items: list[Any]) -> None:
        keep = self.current
        keep_key = self.key(keep) if keep is not None else None
        self.items = list(items)
        cells = [self.cells(item) for item in self.items]
        widths = self._fit(cells)
        table = self.query_one(DataTable)
        if widths != self._widths:
            self._columns(widths)
        else:
            table.clear()
        for item, row in zip(self.items, cells):
            table.add_row(*row, key=self.key(item))
        keys = [self.key(i) for i in self.items]
        if keep_key in keys:
            table.move_cursor(row=keys.index(keep_key))
        self._title()

    def _title(self) -> None:
        extra = f" · {len(self.items)}" if self.items else f" · {self.EMPTY}"
        self.query_one(".table-title", Static).update(Text.assemble(
            (self.TITLE, "bold"), extra, ("  " + self.HINT if self.HINT else "", "dim")))

    @property
    def current(self) -> Any | None:
        table = self.query_one(DataTable)
        if not self.items or not (0 <= table.cursor_row < len(self.items)):
            return None
        return self.items[table.cursor_row]

    # ---- actions: each runs in a worker (forms are awaited), writes, says how it went
    def act(self, job: Callable[[], Awaitable[Any]]) -> None:
        """Run ``job`` (an async callable) as the app's worker: a failure is told where every
        worker's is (``CrowdApp.on_worker_state_changed``)."""
        self.app.run_worker(job, group=f"{self.id}-action", exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Any) -> None:
        """The view's own reload worker: its failure is told in the app's one place too
        (worker state messages do not bubble)."""
        handler = getattr(self.app, "on_worker_state_changed", None)
        if handler is not None:
            handler(event)

    def chosen(self, what: str) -> Any | None:
        item = self.current
        if item is None:
            self.app.notify(f"no {what} selected", severity="warning", markup=False)
        return item

    async def ask(self, title: str, fields: list[Field]) -> dict[str, str] | None:
        return await self.app.push_screen_wait(FormScreen(title, fields))

    async def write(self, done: str | Callable[[Any], str], write: Callable[[], Awaitable[Any]]) -> bool:
        """Run ``write``; tell ``done`` (or ``done(result)``) or the refusal; reload."""
        app: Any = self.app
        try:
            result = await write()
        except Exception as exc:  # the store's (or the dispatch rules') refusal, as it is
            app.store_wrote(exc)
            app.notify(inert(str(exc)), severity="error", markup=False, timeout=8)
            return False
        app.store_wrote(None)
        app.notify(inert(done(result) if callable(done) else done), markup=False)
        self.reload()
        return True


def cell(text: Any, style: str = "") -> Text:
    return safe("" if text is None else text, style)
