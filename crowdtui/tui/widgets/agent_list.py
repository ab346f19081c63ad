"""The agent list: one row per agent, the ones that need the operator on top."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from crowdtui.tui.crew import AgentRow
from crowdtui.tui.text import human_bytes, inert, percent, safe
from crowdtui.tui.widgets.column_widths import fit_widths

STATE_STYLE = {
    "running": "green",
    "working": "cyan",
    "waiting for input": "bold black on yellow",
    "stopped": "dim",
    "crashed": "bold white on red",
    "restarting": "bold black on yellow",
    "crash-looping": "bold white on red",
    "stuck": "bold black on yellow",
}
STATE_GLYPH = {
    "running": "●",
    "working": "◆",
    "waiting for input": "?",
    "stopped": "○",
    "crashed": "✖",
    "restarting": "↻",
    "crash-looping": "✖",
    "stuck": "‖",
}


COLUMN_LABELS = {"agent": "agent", "state": "state", "unread": "✉", "cpu": "cpu", "mem": "mem",
                 "note": "note"}
COLUMNS = tuple(COLUMN_LABELS)  # the order of the cells ``_cells`` returns
FIXED_WIDTHS = (None, 19, 3, 4, 6, 24)  # None: as wide as the widest name (the roster sets it)


class AgentList(DataTable):
    """Agents with state, unread count, CPU, memory and status note."""

    DEFAULT_CSS = """
    AgentList { height: 1fr; width: auto; overflow-x: hidden; }
    AgentList > .datatable--cursor { text-style: bold; }
    """

    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
        Binding("g", "scroll_top", "top", show=False),
        Binding("G", "scroll_bottom", "bottom", show=False),
    ]

    class Selected(Message):
        """The highlighted agent changed (``name`` is None when the list is empty)."""

        def __init__(self, agent_list: "AgentList", name: str | None) -> None:
            super().__init__()
            self.agent_list = agent_list
            self.name = name

        @property
        def control(self) -> "AgentList":
            return self.agent_list

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._rows: list[AgentRow] = []
        self._shown: tuple = ()
        self._filter = ""
        self._selected: str | None = None
        self._widths: list[int] = []

    def on_mount(self) -> None:
        self._add_columns(fit_widths(list(COLUMN_LABELS.values()), FIXED_WIDTHS, []))

    def _add_columns(self, widths: list[int]) -> None:
        """Name, state and note take the width their cells need (the list is only as wide as
        its rows: the view beside it gets the rest); the figures keep a fixed width."""
        self._widths = widths
        for (key, label), width in zip(COLUMN_LABELS.items(), widths):
            self.add_column(label, key=key, width=width)

    @property
    def rows_shown(self) -> list[AgentRow]:
        f = self._filter.lower()
        return [r for r in self._rows if not f or f in r.name.lower() or f in r.note.lower()
                or f in r.state]

    @property
    def selected(self) -> str | None:
        return self._selected

    def row(self, name: str) -> AgentRow | None:
        for r in self._rows:
            if r.name == name:
                return r
        return None

    def set_rows(self, rows: list[AgentRow]) -> None:
        self._rows = list(rows)
        self._render_rows()

    def set_filter(self, text: str) -> None:
        self._filter = text.strip()
        self._render_rows()

    def select(self, name: str) -> None:
        for i, r in enumerate(self.rows_shown):
            if r.name == name:
                self.move_cursor(row=i)
                return

    def _render_rows(self) -> None:
        rows = self.rows_shown
        key = tuple(rows)
        if key == self._shown:
            return
        before, self._shown = self._shown, key
        cells = [self._cells(r) for r in rows]
        widths = fit_widths(list(COLUMN_LABELS.values()), FIXED_WIDTHS, cells)
        if (widths == self._widths and [r.name for r in before] == [r.name for r in rows]
                and self.row_count == len(rows)):
            # Same agents in the same order (a stats sample, a state): repaint only the
            # cells that changed, not the whole table.
            for old, new, new_cells in zip(before, rows, cells):
                if old != new:
                    for column, cell in zip(COLUMNS, new_cells):
                        self.update_cell(new.name, column, cell)
            return
        keep = self._selected
        if widths != self._widths:
            self.clear(columns=True)
            self._add_columns(widths)
        else:
            self.clear()
        for r, row_cells in zip(rows, cells):
            self.add_row(*row_cells, key=r.name)
        if rows:
            names = [r.name for r in rows]
            self.move_cursor(row=names.index(keep) if keep in names else 0)
        self._announce()

    def _cells(self, r: AgentRow) -> list[Text]:
        indent = "  " * max(0, r.tier) if not r.is_operator else ""
        name = safe(indent + inert(r.name), "bold" if r.needs_operator else "")
        if not r.defined:
            name.append(" (gone)", "dim italic")
        kind = r.state.split(" (", 1)[0]  # "restarting (2/5)" is styled as restarting
        state = Text(f"{STATE_GLYPH.get(kind, ' ')} {r.state}", STATE_STYLE.get(kind, ""))
        if r.is_operator:
            state = Text("you", "bold magenta")
        unread = Text(str(r.unread) if r.unread else "", "bold yellow")
        cpu = Text(percent(r.cpu) if r.running and not r.is_operator else "", justify="right")
        mem = Text(human_bytes(r.memory) if r.running and r.memory is not None else "",
                   justify="right")
        note = safe(r.note[:40], "italic")
        return [name, state, unread, cpu, mem, note]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._announce()

    def _announce(self) -> None:
        rows = self.rows_shown
        name = rows[self.cursor_row].name if rows and 0 <= self.cursor_row < len(rows) else None
        if name != self._selected:
            self._selected = name
            self.post_message(self.Selected(self, name))
