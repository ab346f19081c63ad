"""Routes, scheduled tasks, channels and secrets from the console; activity in words; search.
Each drives the real app over the real store (no containers, no hub)."""

from __future__ import annotations

import time

from textual.widgets import DataTable, Input, RichLog

from crowdtui.dispatch.routes import list_routes
from crowdtui.dispatch.tasks import list_tasks
from crowdtui.secrets import Vault
from crowdtui.tui.screens.document import DocumentScreen
from crowdtui.tui.screens.form import FormScreen
from crowdtui.tui.screens.search import SearchScreen
from crowdtui.tui.widgets.activity_view import ActivityView
from crowdtui.tui.widgets.agent_list import AgentList
from crowdtui.tui.widgets.channels_view import ChannelsView
from crowdtui.tui.widgets.routes_view import RoutesView
from crowdtui.tui.widgets.secrets_view import SecretsView
from crowdtui.tui.widgets.tasks_view import TasksView
from qms import channels, inbound
from tests.tui.conftest import add_agent, registered, store_app, wait_for
from tests.waiting import settle


async def fill(pilot, app, values: dict[str, str]) -> FormScreen:
    """Wait for the form, type ``values`` into its fields, submit it (ctrl+s)."""
    form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen, what="a form")
    for name, value in values.items():
        form.query_one(f"#form-{name}").value = value
    await pilot.press("ctrl+s")
    return form


def told(app, text: str) -> bool:
    return any(text in str(n.message) for n in app._notifications)


def crew_app(workspace, *agents, **kw):
    """The app over the store, with ``agents`` in the roster."""
    for n in agents:
        add_agent(workspace, n)
    return store_app(workspace, **kw)


async def started(pilot, app, store, *agents):
    await wait_for(pilot, lambda: all(app.query_one(AgentList).row(n) for n in agents), what="rows")
    await registered(store, *agents)


async def test_routes_add_reorder_remove(workspace, store):
    app = crew_app(workspace, "alice", "bob")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice", "bob")
        await pilot.press("7")
        view = app.query_one(RoutesView)
        await wait_for(pilot, lambda: app.focused is view.query_one(DataTable), what="routes focused")
        # an unknown agent is refused, said, and nothing is stored
        await pilot.press("n")
        await fill(pilot, app, {"match": "platform=telegram", "agent": "nobody"})
        await wait_for(pilot, lambda: told(app, "no agent named 'nobody'"), what="refusal told")
        assert await list_routes(store) == []
        await pilot.press("n")
        await fill(pilot, app, {"match": "platform=telegram", "agent": "alice"})
        await wait_for(pilot, lambda: len(view.items) == 1, what="first route shown")
        await pilot.press("n")
        await fill(pilot, app, {"match": "sender=boss*", "agent": "bob"})
        await wait_for(pilot, lambda: len(view.items) == 2, what="second route shown")
        assert [r.agent for r in view.items] == ["alice", "bob"]
        view.query_one(DataTable).move_cursor(row=1)
        await pilot.press("K")  # bob's route up: tried first
        await wait_for(pilot, lambda: [r.agent for r in view.items] == ["bob", "alice"], what="moved up")
        assert [r.agent for r in await list_routes(store)] == ["bob", "alice"]
        assert view.current.agent == "bob"  # the cursor follows the route
        await pilot.press("J")
        await wait_for(pilot, lambda: [r.agent for r in view.items] == ["alice", "bob"], what="moved down")
        await pilot.press("D")
        await fill(pilot, app, {})  # the confirmation
        await wait_for(pilot, lambda: [r.agent for r in view.items] == ["alice"], what="removed")
        # an agent's wide route waits for the operator: A approves it, X rejects another
        from crowdtui.dispatch.routes import add_route

        for match in ("platform=*", "sender=*"):
            await add_route(store, match, "bob", actor="bob", now=time.time())
        await wait_for(pilot, lambda: [r.state for r in view.items] == ["active", "pending", "pending"],
                       what="pending routes shown")
        view.query_one(DataTable).move_cursor(row=1)
        await pilot.press("A")
        await wait_for(pilot, lambda: [r.state for r in view.items] == ["active", "active", "pending"],
                       what="approved")
        view.query_one(DataTable).move_cursor(row=2)
        await pilot.press("X")
        await wait_for(pilot, lambda: len(view.items) == 2, what="rejected")
    assert [(r.agent, r.state) for r in await list_routes(store)] == [("alice", "active"), ("bob", "active")]
    kinds = [e.kind for e in await store.events_after(0, kinds="route.*")]
    assert kinds == ["route.added", "route.added", "route.moved", "route.moved", "route.removed",
                     "route.pending", "route.pending", "route.approved", "route.rejected"]


async def test_tasks_add_pause_resume_remove_with_next_run(workspace, store):
    app = crew_app(workspace, "alice", time_format=lambda ts: "T" + time.strftime("%H:%M", time.localtime(ts)))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice")
        await pilot.press("8")
        view = app.query_one(TasksView)
        await wait_for(pilot, lambda: app.focused is view.query_one(DataTable), what="tasks focused")
        await pilot.press("n")
        await fill(pilot, app, {"name": "standup", "agent": "alice", "schedule": "every:nonsense",
                                "text": "post the standup"})
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications), what="bad schedule")
        assert await list_tasks(store) == []
        await pilot.press("n")
        await fill(pilot, app, {"name": "standup", "agent": "alice", "schedule": "every:1h",
                                "text": "post the standup"})
        await wait_for(pilot, lambda: len(view.items) == 1, what="task shown")
        [task] = await list_tasks(store)
        row = view.query_one(DataTable).get_row_at(0)
        assert str(row[1]) == "active" and str(row[4]) == "T" + time.strftime("%H:%M", time.localtime(task.next_due))
        assert str(row[5]) == "never"
        await pilot.press("p")
        await wait_for(pilot, lambda: view.items[0].state == "paused", what="paused")
        assert str(view.query_one(DataTable).get_row_at(0)[4]) == "-"
        await pilot.press("p")
        await wait_for(pilot, lambda: view.items[0].state == "active", what="resumed")
        await pilot.press("D")
        await fill(pilot, app, {})
        await wait_for(pilot, lambda: view.items == [], what="removed")
    assert await list_tasks(store) == []
    kinds = [e.kind for e in await store.events_after(0, kinds="task.*")]
    assert kinds == ["task.added", "task.paused", "task.resumed", "task.removed"]


async def test_channels_show_health_and_last_message(workspace, store):
    now = time.time()
    await channels.register_channel(store, name="tg", platform="telegram", callback_url="http://127.0.0.1:9/cb",
                                    prefixes=["tg:"], now=now)
    await channels.register_channel(store, name="mx", platform="matrix", callback_url="http://127.0.0.1:9/mx",
                                    prefixes=["mx:"], now=now)
    await inbound.store_arrivals(store, [
        inbound.Arrival("tg", "telegram", "1", "tg:42", "first words", sender="u1", sender_name="Ann"),
        inbound.Arrival("tg", "telegram", "2", "tg:42", "latest words\x1b[2J", sender="u1",
                        sender_name="Ann\x1b]0;owned\x07"),
    ], now=now)
    for _ in range(3):
        await channels.record_health(store, "mx", False, now=now, max_failures=3)
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("9")
        view = app.query_one(ChannelsView)
        await wait_for(pilot, lambda: len(view.items) == 2, what="channels shown")
        table = view.query_one(DataTable)
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(2)}
        assert rows["tg"][1] == "up" and "latest words\\x1b[2J" in rows["tg"][6]
        assert "\x1b" not in rows["tg"][6] and "Ann\\x1b]0;owned\\x07" in rows["tg"][6]  # shown inert
        assert rows["mx"][1] == "down" and rows["mx"][3] == "3" and rows["mx"][6] == "-"


async def test_secrets_names_only_set_from_a_hidden_prompt(workspace, store):
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("0")
        view = app.query_one(SecretsView)
        await wait_for(pilot, lambda: app.focused is view.query_one(DataTable), what="secrets focused")
        await pilot.press("n")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        assert form.query_one("#form-value", Input).password  # typed hidden
        await fill(pilot, app, {"name": "bad name!", "value": "x"})
        await wait_for(pilot, lambda: any(n.severity == "error" for n in app._notifications), what="bad name")
        await pilot.press("n")
        await fill(pilot, app, {"name": "API_KEY", "value": "s3cret-value"})
        await wait_for(pilot, lambda: [n for n, _ in view.items] == ["API_KEY"], what="secret listed")
        shown = " ".join(str(c) for c in view.query_one(DataTable).get_row_at(0))
        assert "s3cret" not in shown
        assert await Vault.open(workspace, store).reveal(["API_KEY"]) == {"API_KEY": "s3cret-value"}
        await pilot.press("D")
        await fill(pilot, app, {})
        await wait_for(pilot, lambda: view.items == [], what="secret removed")
    assert await Vault.open(workspace, store).names() == []
    assert all("s3cret" not in str(e.detail) for e in await store.events_after(0))


async def test_activity_in_words_with_the_json_a_key_away(workspace, store):
    app = crew_app(workspace, "alice", "bob")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice", "bob")
        doc = await store.create_document("alice", "SOP", "Runbook", "v1\n")
        await store.checkout(doc.id, "alice")
        await store.checkin(doc.id, "alice", "v2\n")
        await pilot.press("4")
        feed = app.query_one(ActivityView)
        log = feed.query_one(RichLog)
        await wait_for(pilot, lambda: any(e.kind == "doc.checkin" for e in feed.events), what="events")
        await wait_for(pilot, lambda: app.focused is log, what="feed focused")
        text = "\n".join(s.text for s in log.lines)
        assert f"alice checked in {doc.id} v2" in text and f'alice created {doc.id} "Runbook"' in text
        assert "doc.checkin" not in text
        await pilot.press("J")
        await wait_for(pilot, lambda: feed.raw, what="JSON shown")
        text = "\n".join(s.text for s in log.lines)
        assert "doc.checkin" in text and '"version": 2' in text
        await pilot.press("J")
        await wait_for(pilot, lambda: not feed.raw)


async def test_search_across_messages_and_documents(workspace, store):
    app = crew_app(workspace, "alice", "bob")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app, store, "alice", "bob")
        await store.send_message("alice", "bob", "the tape rotation is due friday")
        await store.send_message("alice", "bob", "lunch?")
        doc = await store.create_document("bob", "SOP", "Backups", "rotate the TAPE weekly\n")
        await store.create_document("bob", "SOP", "Coffee", "grind fresh\n")
        await pilot.press("ctrl+f")
        screen = await wait_for(pilot, lambda: isinstance(app.screen, SearchScreen) and app.screen)
        await pilot.press(*"tape", "enter")
        await wait_for(pilot, lambda: screen.hits, what="hits")
        assert sorted(h.kind for h in screen.hits) == ["document", "message"]
        assert {h.ref for h in screen.hits if h.kind == "document"} == {doc.id}
        body = screen.query_one("#search-text")
        await wait_for(pilot, lambda: "tape" in str(body.render()).lower(), what="the hit's text shown")
        # a query with LIKE's wildcards matches them literally
        assert app.focused is screen.query_one(DataTable)
        await pilot.press("slash")  # back to the query
        await wait_for(pilot, lambda: app.focused is screen.query_one(Input), what="query focused")
        screen.query_one(Input).value = "%"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.query_text == "%", what="second search")
        assert screen.hits == []
        screen.query_one(Input).value = "Backups"
        await pilot.press("enter")
        await wait_for(pilot, lambda: screen.hits and screen.query_text == "Backups", what="title found")
        assert app.focused is screen.query_one(DataTable)
        await pilot.press("enter")
        opened = await wait_for(pilot, lambda: isinstance(app.screen, DocumentScreen) and app.screen)
        assert opened.doc_id == doc.id


def test_help_lists_every_key_of_the_new_views():
    from crowdtui.tui.doc_actions import DOC_KEYS
    from crowdtui.tui.screens.help import KEYS
    from crowdtui.tui.views import VIEWS

    by_section: dict[str, list[str]] = {}
    for section, keys, _ in KEYS:
        by_section.setdefault(section, []).extend(keys.replace("/", " ").split())
    for section, view in (("Routes", RoutesView), ("Tasks", TasksView), ("Secrets", SecretsView),
                          ("Activity", ActivityView)):
        for binding in view.BINDINGS:
            assert binding.key in by_section[section], f"{section}: {binding.key} missing from the help"
    for key, _ in DOC_KEYS:
        assert key in by_section["Documents"], f"Documents: {key} missing from the help"
    assert all(key in by_section["Anywhere"] for key, *_ in VIEWS)
    assert "ctrl+f" in by_section["Anywhere"]


async def test_palette_offers_the_new_views_search_and_document_actions(workspace):
    from textual.command import CommandPalette

    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        for words, done in (("view routes", lambda: app.active_view == "routes"),
                            ("view secrets", lambda: app.active_view == "secrets"),
                            ("search messages", lambda: isinstance(app.screen, SearchScreen))):
            await pilot.press("colon")
            await wait_for(pilot, lambda: CommandPalette.is_open(app))
            await pilot.press(*words)
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, done, what=words)
        await pilot.press("escape")
        await pilot.press("3", "colon")
        await wait_for(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"document: new")
        await pilot.pause(0.3)
        await pilot.press("enter")
        form = await wait_for(pilot, lambda: isinstance(app.screen, FormScreen) and app.screen)
        assert "New document" in str(form.query_one(".form-title").render())
        await pilot.press("escape")


async def test_palette_runs_a_views_own_key(workspace, store):
    from textual.command import CommandPalette

    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("colon")
        await wait_for(pilot, lambda: CommandPalette.is_open(app))
        await pilot.press(*"secrets: set secret")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await fill(pilot, app, {"name": "FROM_PALETTE", "value": "v"})
        view = app.query_one(SecretsView)
        await wait_for(pilot, lambda: [n for n, _ in view.items] == ["FROM_PALETTE"], what="set from the palette")
        assert app.active_view == "secrets"


async def test_the_agent_list_takes_only_the_width_it_needs(workspace, store):
    app = crew_app(workspace, "al", "bo")
    async with app.run_test(size=(200, 40)) as pilot:
        await started(pilot, app, store, "al", "bo")
        left, views = app.query_one("#left"), app.query_one("#views")
        agents = app.query_one(AgentList)
        await wait_for(pilot, lambda: left.outer_size.width and left.outer_size.width + views.outer_size.width == 200)
        narrow = left.outer_size.width
        assert narrow < 80 and views.outer_size.width > 120  # short names: the terminal gets the rest
        # a note does not move the terminal's edge (its program would redraw at every note)
        await store.set_agent_status("al", "working", "a long note about the backup plan for the week",
                                     actor="al")
        await wait_for(pilot, lambda: agents.row("al").note.startswith("a long"), what="note shown")
        await settle(pilot, 5)
        assert left.outer_size.width == narrow
        await pilot.resize_terminal(150, 40)
        await wait_for(pilot, lambda: views.outer_size.width >= 84
                       and left.outer_size.width + views.outer_size.width == 150)
