"""Fixtures for the store's tests: a real SQLite file per test, and a table dump to prove
that a refused action changed nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from qms import Store
from store_dump import dump

AGENTS = ("alice", "bob", "carol", "dave")


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "crowd" / "crowd.db"


@pytest.fixture
async def store(db_path):
    """An open store with agents alice, bob, carol and dave registered."""
    s = await Store.open(db_path)
    for name in AGENTS:
        await s.upsert_agent(name, path=name, tier=0)
    yield s
    await s.close()


@pytest.fixture
def snapshot(db_path):
    """``snap = snapshot()`` then ``assert snapshot() == snap``; ``snapshot(without_refusals=True)``
    leaves out the ``doc.refused`` events a refusal adds."""
    return lambda **kw: dump(db_path, **kw)


@pytest.fixture
def refusals(store):
    """``await refusals()``: the ``doc.refused`` events so far as (actor, subject, action, rule)."""

    async def read():
        return [(e.actor, e.subject, e.detail["action"], e.detail["rule"])
                for e in await store.events_after(0, limit=100_000, kinds=["doc.refused"])]
    return read
