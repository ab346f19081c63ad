"""A small modal form (a comment, a review outcome, route assignees, a hidden secret value);
with no fields it is a confirmation."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from crowdtui.tui.text import inert


@dataclass
class Field:
    name: str
    label: str
    options: list[str] = field(default_factory=list)  # non-empty: a choice
    value: str = ""
    required: bool = False
    password: bool = False  # typed hidden (a secret's value)


class FormScreen(ModalScreen[dict | None]):
    """Returns {field name: value} on submit, ``None`` on cancel."""

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > Vertical {
        width: 80%; max-width: 90; height: auto; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    FormScreen Label { margin-top: 1; }
    FormScreen #form-error { color: $error; height: auto; }
    FormScreen #form-buttons { height: 3; align-horizontal: right; }
    """
    BINDINGS = [
        Binding("ctrl+s", "submit", "submit", priority=True),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, title: str, fields: list[Field]) -> None:
        super().__init__()
        self.form_title = title
        self.fields = fields

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(inert(self.form_title), markup=False, classes="form-title")
            for f in self.fields:
                yield Label(inert(f.label), markup=False)
                if f.options:
                    yield Select([(o, o) for o in f.options], value=f.value or f.options[0],
                                 allow_blank=False, id=f"form-{f.name}")
                else:
                    yield Input(f.value, id=f"form-{f.name}", password=f.password)
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("OK (ctrl+s)", variant="primary", id="form-ok")
                yield Button("Cancel (esc)", id="form-cancel")

    def values(self) -> dict[str, str]:
        out = {}
        for f in self.fields:
            w = self.query_one(f"#form-{f.name}")
            out[f.name] = str(w.value)
        return out

    def action_submit(self) -> None:
        vals = self.values()
        for f in self.fields:
            if f.required and not vals[f.name].strip():
                self.query_one("#form-error", Static).update(f"{f.label} is needed.")
                return
        self.dismiss(vals)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#form-ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#form-cancel")
    def _cancel(self) -> None:
        self.action_cancel()
