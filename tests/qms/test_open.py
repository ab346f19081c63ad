"""Opening the store: file and folder created, pragmas set, migrations applied once and recorded."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from qms import Store
from qms.db import discover_migrations, migrate, connect
from qms.errors import QmsError


async def test_open_creates_folder_applies_migrations_and_sets_pragmas(tmp_path):
    path = tmp_path / "a" / "b" / "crowd.db"
    store = await Store.open(path)
    try:
        assert store.path == path and path.is_file()
        assert (await store.query("PRAGMA journal_mode"))[0][0] == "wal"
        assert (await store.query("PRAGMA synchronous"))[0][0] == 2  # FULL
        assert (await store.query("PRAGMA busy_timeout"))[0][0] >= 1000
        recorded = [r[0] for r in await store.query("SELECT version FROM schema_migrations ORDER BY version")]
        assert recorded == [m.version for m in discover_migrations()]
        assert recorded[:5] == [1, 2, 3, 4, 5]
        types = {t["code"]: t["executable"] for t in await store.doc_types()}
        assert types == {"SOP": False, "SPEC": False, "CR": True, "TP": True}
    finally:
        await store.close()


async def test_reopen_keeps_data_and_applies_nothing_twice(tmp_path):
    path = tmp_path / "crowd.db"
    s1 = await Store.open(path)
    await s1.upsert_agent("alice", path="alice", tier=0)
    await s1.close()
    s2 = await Store.open(path)
    try:
        assert (await s2.get_agent("alice")).path == "alice"
        rows = await s2.query("SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations")
        assert rows[0][0] == rows[0][1] == len(discover_migrations())
        db = await connect(path)
        try:
            assert await migrate(db) == []
        finally:
            await db.close()
    finally:
        await s2.close()


async def test_many_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "crowd.db"
    stores = await asyncio.gather(*(Store.open(path) for _ in range(20)))
    try:
        rows = await stores[0].query("SELECT version, COUNT(*) FROM schema_migrations GROUP BY version")
        assert all(n == 1 for _, n in rows) and len(rows) == len(discover_migrations())
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_migrations_are_applied_in_order_and_a_broken_one_applies_nothing(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "002_second.sql").write_text("CREATE TABLE b (x INTEGER REFERENCES a (x));\n")
    (folder / "001_first.sql").write_text("-- a comment\nCREATE TABLE a (x INTEGER PRIMARY KEY);\n")
    db = await connect(tmp_path / "m.db")
    try:
        assert await migrate(db, folder) == [1, 2]
        (folder / "003_broken.sql").write_text("CREATE TABLE c (y);\nCREATE TABLE a (x);\n")
        with pytest.raises(QmsError, match="003_broken.sql failed"):
            await migrate(db, folder)
        tables = {r[0] for r in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "c" not in tables  # the whole run was rolled back
        versions = [r[0] for r in await db.execute_fetchall("SELECT version FROM schema_migrations")]
        assert versions == [1, 2]
    finally:
        await db.close()


def test_two_migrations_with_one_number_are_refused(tmp_path):
    (tmp_path / "010_a.sql").write_text("SELECT 1;")
    (tmp_path / "010_b.sql").write_text("SELECT 1;")
    with pytest.raises(QmsError, match="share number 010"):
        discover_migrations(tmp_path)
    (tmp_path / "010_b.sql").unlink()
    (tmp_path / "11-x.sql").write_text("SELECT 1;")
    with pytest.raises(QmsError, match="NNN_name.sql"):
        discover_migrations(tmp_path)


async def test_a_file_that_is_not_a_database_gives_one_clear_line(tmp_path):
    path = tmp_path / "crowd.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(QmsError) as info:
        await Store.open(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


async def test_closed_store_refuses_use(tmp_path):
    store = await Store.open(tmp_path / "crowd.db")
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(QmsError, match="closed"):
        await store.list_agents()


def test_importing_qms_loads_neither_textual_docker_nor_crowdtui():
    code = (
        "import sys, qms, qms.store, qms.documents, qms.messages, qms.registry, qms.events, qms.db\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'docker', 'crowdtui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_write_rolls_back_everything_on_error(store, snapshot):
    before = snapshot()
    with pytest.raises(RuntimeError):
        async with store.write() as db:
            await db.execute("DELETE FROM agents")
            await store.append_event_in(db, "operator", "test.thing", "x", {})
            raise RuntimeError("boom")
    assert snapshot() == before
    # the writer is usable again afterwards
    assert await store.append_event("operator", "test.thing", "x") > 0



async def test_a_writer_blocked_past_the_busy_timeout_gets_one_clear_line(tmp_path):
    import sqlite3

    from qms.errors import Busy

    path = tmp_path / "crowd.db"
    store = await Store.open(path, busy_timeout=0.3)
    try:
        await store.upsert_agent("bob", path="bob", tier=0)
        other = sqlite3.connect(str(path), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(Busy, match="locked by another writer") as info:
                await store.send_message("operator", "bob", "hi")
            assert "\n" not in str(info.value)
            with pytest.raises(Busy):
                await store.create_document("operator", "SOP", "t")
        finally:
            other.execute("ROLLBACK")
            other.close()
        # the lock is gone: both paths work again, and nothing half-done was left behind
        assert len(await store.send_message("operator", "bob", "hi")) == 1
        assert (await store.create_document("operator", "SOP", "t")).id == "SOP-001"
        assert [m.body for m in await store.inbox("bob")] == ["hi"]
    finally:
        await store.close()


async def test_a_cancelled_writer_leaves_nothing_half_done(store, snapshot):
    before = snapshot()
    started = asyncio.Event()

    async def slow_writer():
        async with store.write() as db:
            await db.execute("DELETE FROM agents")
            started.set()
            await asyncio.sleep(30)  # cancelled here, mid-transaction

    task = asyncio.create_task(slow_writer())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert snapshot() == before
    # the writer connection is free and out of any transaction
    assert len(await store.send_message("operator", "bob", "still works")) == 1
    assert len(await store.list_agents()) == 4
