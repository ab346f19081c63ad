"""Focusing a view's table when its tab is shown — but only while that tab is still the one
shown: Textual switches to the tab of whatever widget gets focus, so a view shown for a
moment (the neighbour of a closed tab) must not pull the tabs back to itself."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane


def focus_when_shown(view: Widget, target: Widget) -> None:
    """After the next refresh, focus ``target`` if ``view``'s tab is still the active one."""
    def focus() -> None:
        pane = next((a for a in view.ancestors if isinstance(a, TabPane)), None)
        tabs = next((a for a in view.ancestors if isinstance(a, TabbedContent)), None)
        if pane is not None and tabs is not None and tabs.active == pane.id:
            target.focus()
    view.call_after_refresh(focus)
