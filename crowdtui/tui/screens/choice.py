"""A modal list of choices (the actions a document allows now): enter picks, escape cancels."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from crowdtui.tui.text import inert


class ChoiceScreen(ModalScreen[str | None]):
    """Returns the id of the chosen item, ``None`` on escape."""

    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical {
        width: 70%; max-width: 70; height: auto; border: thick $accent; background: $surface;
        padding: 0 1;
    }
    ChoiceScreen OptionList { height: auto; max-height: 20; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.choice_title = title
        self.choices = choices  # (id, label)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(inert(self.choice_title), markup=False)
            yield OptionList(*[Option(inert(label), id=key) for key, label in self.choices],
                             id="choices")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @property
    def ids(self) -> list[str]:
        return [key for key, _ in self.choices]

    def pick(self, key: str) -> None:
        """Highlight ``key`` (as the arrow keys would)."""
        self.query_one(OptionList).highlighted = self.ids.index(key)

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
