"""The console's one worker-error handler: a worker that fails (here: the store breaks
under it) is told to the operator as an error notification (once while it fails the same
way), and the console goes on."""

from __future__ import annotations

import sqlite3

import pytest
from textual.worker import WorkerCancelled, WorkerFailed

from crowdtui.tui.widgets.activity_view import ActivityView
from tests.tui.conftest import store_app, wait_for


async def test_a_failing_worker_is_told_to_the_operator_and_the_console_goes_on(workspace, store):
    app = store_app(workspace)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._store_signal is not None and app._store_signal.hits >= 1,
                       what="the console reading the store")
        other = sqlite3.connect(workspace.db_path, isolation_level=None)
        try:
            other.execute("ALTER TABLE documents RENAME TO documents_away")  # another process breaks it
            app.action_view("documents")  # showing the board reads the documents: that worker fails
            await wait_for(pilot, lambda: any(
                n.severity == "error" and "refresh documents failed" in str(n.message)
                and "documents" in str(n.message).split("failed", 1)[1]
                for n in app._notifications), what="the failed worker told to the operator")
            # the same failure again is logged, not told again
            for _ in range(20):  # a store change may start the next refresh and cancel this one
                worker = app.refresh_documents()
                try:
                    await worker.wait()
                except WorkerCancelled:
                    continue
                except WorkerFailed:
                    break
                pytest.fail("refreshing the documents from a broken table succeeded")
            else:
                pytest.fail("every refresh of the documents was cancelled")
            await pilot.pause()
            told = [n for n in app._notifications if "refresh documents failed" in str(n.message)]
            assert len(told) == 1
            other.execute("ALTER TABLE documents_away RENAME TO documents")
        finally:
            other.close()
        assert app.is_running
        await store.send_message("operator", "operator", "still here")
        activity = app.query_one(ActivityView)
        await wait_for(pilot, lambda: any(e.kind == "message.sent" for e in activity.events),
                       what="the console still following the store")
