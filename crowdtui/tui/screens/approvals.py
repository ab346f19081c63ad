"""Approvals (``P``): every permission request of every agent, waiting in one queue.

The highlighted request's title, input and diff show below the list. ``y`` allows it once,
``Y`` always (for that agent and tool, until revoked), ``n`` rejects it once, ``N`` always;
``u`` switches to the remembered "always" rules, where ``D`` revokes one. The queue is the
store's (:mod:`qms.permissions`): the console reads it again whenever a ``permission.*``
event arrives, and answers through the one path every answer takes
(:func:`crowdtui.hub.approvals.answer_permission`).
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from crowdtui.tui.screens.form import FormScreen
from crowdtui.tui.text import clock, inert, safe
from qms.names import OPERATOR

MAX_DIFF_LINES = 500  # lines of a diff shown (the request keeps it whole: `approvals show ID`)
_DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def diff_text(diff: str) -> Text:
    """A unified diff, inert, added lines green and removed ones red."""
    lines = diff.split("\n")
    out = Text()
    for line in lines[:MAX_DIFF_LINES]:
        style = next((s for prefix, s in _DIFF_STYLES if line.startswith(prefix)), "")
        out.append_text(safe(line, style))
        out.append("\n")
    if len(lines) > MAX_DIFF_LINES:
        out.append(f"… {len(lines) - MAX_DIFF_LINES} more lines (crowdtui approvals show ID)\n", "dim")
    return out


class ApprovalsScreen(Screen[None]):
    DEFAULT_CSS = """
    ApprovalsScreen #approvals-title { height: 1; background: $panel; padding: 0 1; }
    ApprovalsScreen #approvals-table { height: 1fr; min-height: 4; }
    ApprovalsScreen #approvals-detail { height: 2fr; border-top: solid $panel; padding: 0 1; }
    """
    BINDINGS = [
        Binding("y", "answer('allow_once')", "allow once"),
        Binding("Y", "answer('allow_always')", "allow always"),
        Binding("n", "answer('reject_once')", "reject once"),
        Binding("N", "answer('reject_always')", "reject always"),
        Binding("A", "answer('allow_once')", "allow", show=False),
        Binding("X", "answer('reject_once')", "reject", show=False),
        Binding("u", "toggle_rules", "rules / requests"),
        Binding("D", "revoke", "revoke rule"),
        Binding("escape", "close", "back"),
        Binding("question_mark", "keys", "keys", key_display="?"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []
        self.rules: list[Any] = []
        self.showing_rules = False

    def compose(self) -> ComposeResult:
        yield Static(id="approvals-title")
        yield DataTable(cursor_type="row", id="approvals-table")
        with VerticalScroll(id="approvals-detail"):
            yield Static(id="approvals-text")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self._columns()
        self.show(getattr(self.app, "permission_requests", []))
        self.query_one(DataTable).focus()
        self.app.refresh_permissions()  # the newest, whatever the app read last

    # ---- what is shown -------------------------------------------------------------
    def _columns(self) -> None:
        t = self.query_one(DataTable)
        t.clear(columns=True)
        if self.showing_rules:
            for key, label, width in (("agent", "agent", 16), ("tool", "tool", 24), ("outcome", "always", 14),
                                      ("by", "by", 12), ("at", "since", 8)):
                t.add_column(label, key=key, width=width)
        else:
            for key, label, width in (("id", "id", 5), ("agent", "agent", 14), ("tool", "tool", 14),
                                      ("title", "title", 40), ("at", "asked", 8), ("left", "expires", 8)):
                t.add_column(label, key=key, width=width)

    @property
    def current(self) -> Any | None:
        items = self.rules if self.showing_rules else self.requests
        t = self.query_one(DataTable)
        return items[t.cursor_row] if items and 0 <= t.cursor_row < len(items) else None

    def show(self, requests: list[Any]) -> None:
        """The pending requests (the app calls this whenever it read them again)."""
        self.requests = list(requests)
        if not self.showing_rules:
            self._fill()

    def show_rules(self, rules: list[Any]) -> None:
        self.rules = list(rules)
        if self.showing_rules:
            self._fill()

    def _fill(self) -> None:
        keep = self._key(self.current) if self.current is not None else None
        t = self.query_one(DataTable)
        t.clear()
        fmt = getattr(self.app, "time_format", clock)
        items = self.rules if self.showing_rules else self.requests
        for item in items:
            if self.showing_rules:
                cells = [safe(item.agent, "bold"), safe(item.tool),
                         Text(item.outcome, "green" if item.outcome == "allow_always" else "red"),
                         safe(item.created_by), Text(fmt(item.created_at))]
            else:
                cells = [Text(str(item.id)), safe(item.agent, "bold"), safe(item.tool), safe(item.title),
                         Text(fmt(item.opened_at)), Text(fmt(item.expires_at) if item.expires_at else "never")]
            t.add_row(*cells, key=self._key(item))
        keys = [self._key(i) for i in items]
        if keep in keys:
            t.move_cursor(row=keys.index(keep))
        self._title()
        self._detail()

    def _key(self, item: Any) -> str:
        return f"{item.agent}\x00{item.tool}" if self.showing_rules else str(item.id)

    def _title(self) -> None:
        if self.showing_rules:
            n, what = len(self.rules), ("\"always\" rules", "none: y/n answer once, Y/N always")
            hint = "D revoke · u requests · escape back · ? keys"
        else:
            n, what = len(self.requests), ("waiting", "nothing waits for you")
            hint = "y allow · Y allow always · n reject · N reject always · u rules · escape back · ? keys"
        self.query_one("#approvals-title", Static).update(Text.assemble(
            ("Approvals " if not self.showing_rules else "Approval rules ", "bold"),
            (f"{n} {what[0]}", "bold black on yellow") if n and not self.showing_rules else
            (f"{n} {what[0]}" if n else what[1], "" if n else "dim"),
            ("  " + hint, "dim")))

    def _detail(self) -> None:
        item = self.current
        text = self.query_one("#approvals-text", Static)
        if self.showing_rules:
            text.update(Text("A rule answers that agent's requests for that tool at once; D revokes it "
                             "and the agent asks again.", "dim") if item is None else Text.assemble(
                safe(item.agent, "bold"), "'s ", safe(item.tool, "bold"), " requests: ", item.outcome,
                f" (made by answering request {item.request_id})" if item.request_id else ""))
            return
        if item is None:
            text.update(Text("Permission requests from agents wait here: every agent, one queue.", "dim"))
            return
        parts = [safe(item.agent, "bold"), " asks permission for ", safe(item.tool, "bold"), ": ",
                 safe(item.title), "\n", Text(f"request {item.id} · offers {', '.join(item.options)}\n", "dim")]
        if item.detail:
            parts += [safe(json.dumps(item.detail, sort_keys=True)[:2000], "dim", multiline=False), "\n"]
        parts.append("\n")
        parts.append(diff_text(item.diff) if item.diff is not None else Text("(no diff)", "dim"))
        text.update(Text.assemble(*parts))

    @on(DataTable.RowHighlighted, "#approvals-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._detail()

    # ---- the operator's answers ---------------------------------------------------
    def _act(self, rules: bool, elsewhere: str, none: str, job) -> None:
        """Run ``job(item)`` on the highlighted request (or rule, ``rules``) in a worker, or say
        why not (``elsewhere``: the other list is shown; ``none``: nothing is highlighted)."""
        item = self.current
        if self.showing_rules != rules or item is None:
            self.app.notify(elsewhere if self.showing_rules != rules else none, severity="warning", markup=False)
            return
        self.app.run_worker(partial(job, item), group="approvals-action", exclusive=True, exit_on_error=False)

    def action_answer(self, outcome: str) -> None:
        self._act(False, "u shows the requests to answer", "no permission request waits",
                  partial(self.answer, outcome=outcome))

    async def answer(self, request: Any, outcome: str) -> bool:
        from crowdtui.hub.approvals import answer_permission

        app: Any = self.app
        try:
            done = await answer_permission(app.store, request.id, outcome, OPERATOR)
        except Exception as exc:  # answered meanwhile, expired: the store's one line
            app.store_wrote(exc)
            app.notify(inert(str(exc)), severity="error", markup=False, timeout=8)
            app.refresh_permissions()
            return False
        app.store_wrote(None)
        always = f"; {done.agent}'s {done.tool} requests get the same answer from now on" \
            if outcome.endswith("always") else ""
        app.notify(inert(f"request {done.id} of {done.agent} ({done.tool}): {outcome}{always}"), markup=False)
        app.refresh_permissions()
        return True

    def action_toggle_rules(self) -> None:
        self.showing_rules = not self.showing_rules
        self._columns()
        self._fill()
        if self.showing_rules:
            self.load_rules()

    @work(exclusive=True, group="approval-rules", exit_on_error=False)
    async def load_rules(self) -> None:
        from qms import permissions

        self.show_rules(await permissions.list_rules(self.app.store))

    def action_revoke(self) -> None:
        self._act(True, "u shows the \"always\" rules; D revokes one there", "no rule to revoke", self.revoke)

    async def revoke(self, rule: Any) -> bool:
        from qms import permissions

        app: Any = self.app
        if await app.push_screen_wait(FormScreen(
                f"Revoke {rule.outcome} for {rule.agent}'s {rule.tool}? ctrl+s confirms", [])) is None:
            return False
        try:
            await permissions.revoke_rule(app.store, rule.agent, rule.tool, actor=OPERATOR)
        except Exception as exc:
            app.store_wrote(exc)
            app.notify(inert(str(exc)), severity="error", markup=False, timeout=8)
            return False
        app.store_wrote(None)
        app.notify(inert(f"revoked: {rule.agent} asks again for {rule.tool}"), markup=False)
        self.load_rules()
        return True

    def action_keys(self) -> None:
        from crowdtui.tui.screens.help import APPROVAL_KEYS, HelpScreen

        self.app.push_screen(HelpScreen(APPROVAL_KEYS, "Approvals keys"))

    def action_close(self) -> None:
        self.dismiss(None)
