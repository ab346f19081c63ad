"""A small Textual app recorded for the conformance corpus (header, table, input,
footer, true colour, borders); run by record_streams.py in a real terminal."""

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header, Input


class Demo(App):
    CSS = "DataTable { height: 1fr; border: round $accent; } Input { border: tall $primary; }"
    BINDINGS = [("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable()
        yield Input(placeholder="type here")  # no blinking: a capture is one moment
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "state", "size")
        for i in range(30):
            table.add_row(f"item {i}", ["ok", "busy", "gone"][i % 3], f"{i * 37} KB")
        table.focus()
        self.query_one(Input).cursor_blink = False


if __name__ == "__main__":
    Demo().run()
