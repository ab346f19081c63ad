"""The command palette (``:``): start, stop, restart, shell, message any agent; switch views;
document actions and search; approve or deny held chats."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from textual.command import DiscoveryHit, Hit, Hits, Provider

from crowdtui.tui.doc_actions import DOC_KEYS, LABELS
from crowdtui.tui.text import inert
from crowdtui.tui.views import VIEWS


class CrewCommands(Provider):
    """Commands over the crew, built from the app's current rows."""

    def _commands(self) -> list[tuple[str, Callable[[], Any], str]]:
        app: Any = self.app
        out: list[tuple[str, Callable[[], Any], str]] = []
        for key, _, view, _, _ in VIEWS:
            out.append((f"view {view}", partial(app.action_view, view), f"show the {view} view ({key})"))
        for key, action in DOC_KEYS:
            if action != "menu":
                out.append((f"document: {LABELS.get(action, action).split(':')[0]}",
                            partial(app.action_doc, action), f"on the highlighted document ({key})"))
        out.append(("document: every action allowed now", partial(app.action_doc, "menu"),
                    "the transitions the workflow allows from the document's state (w)"))
        out.append(("search messages and documents", app.action_search, "ctrl+f"))
        n = len(getattr(app, "permission_requests", []))
        out.append(("approvals", app.action_approvals,
                    f"the approval queue: {n} permission request(s) waiting (P)"))
        for key, _, view, widget, wid in VIEWS:  # each view's own keys, from its bindings
            for binding in getattr(widget, "BINDINGS", []):
                out.append((f"{view}: {binding.description}", partial(_view_key, app, view, wid, binding.action),
                            f"in the {view} view ({binding.key})"))
        for hold in getattr(app, "holds", []):
            chat = inert(hold.chat)
            n = f"{hold.count} message{'s' if hold.count != 1 else ''}"
            out.append((f"approve held chat {chat}", partial(app.approve_held, hold.chat),
                        f"route {chat} to an agent, who gets its {n}"))
            out.append((f"deny held chat {chat}", partial(app.deny_held, hold.chat),
                        f"drop the {n} held for {chat}"))
        out.append(("compose message", app.action_compose, "write to the selected agent"))
        out.append(("broadcast", app.action_broadcast, "write to a selection of agents"))
        out.append(("toggle all agents / selected", app.action_toggle_scope,
                    "views show every agent or only the selected one"))
        out.append(("keys", app.action_help, "every key the console answers to"))
        for row in getattr(app, "rows", []):
            if row.is_operator:
                continue
            name = inert(row.name)
            if row.running:
                out.append((f"stop {name}", partial(app.action_stop, row.name),
                            f"stop the container of {name} ({row.state})"))
                out.append((f"restart {name}", partial(app.action_restart, row.name),
                            f"restart {name}"))
                out.append((f"shell in {name}", partial(_exec_in, app, row.name),
                            "open a shell in its container as a terminal tab"))
            else:
                out.append((f"start {name}", partial(app.action_start, row.name),
                            f"start {name} ({row.state})"))
            out.append((f"message {name}", partial(app.action_compose, row.name),
                        f"compose a message to {name}"))
        return out

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)


def _exec_in(app: Any, name: str) -> None:
    app._main.query_one("#agents").select(name)
    app.selected = name
    app.action_exec_shell()


def _view_key(app: Any, view: str, widget_id: str, action: str) -> None:
    """Show ``view`` and run one of its keys' actions there (on its highlighted row)."""
    app.action_view(view)
    widget = app._main.query_one(f"#{widget_id}")
    app.call_after_refresh(widget.run_action, action)
