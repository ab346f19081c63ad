"""Editing a document's text: inline (a TextArea) or in the operator's ``$EDITOR``.

``$VISUAL``/``$EDITOR`` runs on a temporary file while the app is suspended (the real
terminal is handed to the editor and taken back); where the app cannot be suspended
(a web or headless console) the inline editor is used instead."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, TextArea

from crowdtui.tui.text import inert


@dataclass
class Edited:
    content: str
    note: str | None


class EditorScreen(ModalScreen[Edited | None]):
    """ctrl+s checks the text in (with the note), escape cancels."""

    DEFAULT_CSS = """
    EditorScreen { align: center middle; }
    EditorScreen > Vertical {
        width: 95%; height: 90%; border: thick $accent; background: $surface; padding: 0 1;
    }
    EditorScreen TextArea { height: 1fr; }
    EditorScreen #editor-note { height: 1; border: none; padding: 0 1; background: $boost; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "check in", priority=True),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.editor_title = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(inert(self.editor_title + " — ctrl+s check in, escape cancel"), markup=False)
            yield TextArea(self.text, id="editor-text")
            yield Input(placeholder="note for this version (optional)", id="editor-note")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_save(self) -> None:
        note = self.query_one("#editor-note", Input).value.strip()
        self.dismiss(Edited(self.query_one(TextArea).text, note or None))

    def action_cancel(self) -> None:
        self.dismiss(None)


def editor_command() -> list[str] | None:
    """The operator's editor (``$VISUAL``, else ``$EDITOR``) as an argument list, or None."""
    text = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    return shlex.split(text) if text and text.strip() else None


def run_editor(command: list[str], text: str, name: str = "document") -> str | None:
    """Run ``command FILE`` on a temporary file holding ``text``; the file's text after, or
    None when the editor failed (non-zero exit). Blocks: call it with the app suspended."""
    with tempfile.TemporaryDirectory(prefix="crowdtui-edit-") as tmp:
        path = Path(tmp) / f"{name}.md"
        path.write_text(text, encoding="utf-8")
        if subprocess.run([*command, str(path)]).returncode != 0:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
