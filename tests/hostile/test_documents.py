"""Document ids and titles with path traversal and hostile text, straight at the store: ids are
refused or not found (never a file, never another document); titles are data, kept verbatim."""

from __future__ import annotations

import os

import pytest
from hypothesis import strategies as st

from .strategies import HOSTILE_TEXT, TRAVERSAL, examples, one_line


def files(root) -> set[str]:
    return {os.path.join(d, n) for d, _, names in os.walk(root) for n in names}


@pytest.fixture
async def store(workspace):
    from qms import Store

    s = await Store.open(workspace.db_path)
    await s.upsert_agent("lead", path="lead", tier=0)
    yield s
    await s.close()


async def test_hostile_document_ids_are_refused_and_touch_nothing(workspace, store):
    from qms.errors import QmsError

    doc = await store.create_document("lead", "SOP", "Precious", "v1 content")
    before = await store.get_document(doc.id)
    tree = files(workspace.root.parent)
    ids = TRAVERSAL + [f"{doc.id}/../../x", f"{doc.id}\x00", f" {doc.id}", f"{doc.id.lower()}/..", "SOP-0",
                       "SOP-" + "9" * 40, "SOP--1", "../" + doc.id] + examples(HOSTILE_TEXT, 40)
    calls = [
        ("get_document", lambda i: store.get_document(i)),
        ("versions", lambda i: store.versions(i)),
        ("history", lambda i: store.history(i)),
        ("checkout", lambda i: store.checkout(i, "lead")),
        ("checkin", lambda i: store.checkin(i, "lead", "overwritten!")),
        ("route", lambda i: store.route(i, "lead", "review", ["lead"])),
        ("retire", lambda i: store.retire(i, "lead")),
    ]
    for bad in ids:
        if bad == doc.id:
            continue
        for what, call in calls:
            try:
                result = await call(bad)
            except QmsError as exc:
                assert one_line(str(exc)) and len(str(exc)) < 600, (what, bad[:80], str(exc)[:300])
            else:  # only lookups that find nothing may answer without an error
                assert what in ("history", "versions") and not result, (what, repr(bad)[:80], result)
    after = await store.get_document(doc.id)
    assert (after.content, after.version, after.state, after.holder) == (
        before.content, before.version, before.state, before.holder)
    assert [d.id for d in await store.list_documents()] == [doc.id]
    assert files(workspace.root.parent) - tree <= {str(workspace.db_path) + "-wal", str(workspace.db_path) + "-shm"}


async def test_hostile_titles_are_kept_verbatim_or_refused_clearly(workspace, store):
    from qms.errors import QmsError

    titles = TRAVERSAL + ["../../../../tmp/crowd-title", "CON", "nul", "a" * 5000] + examples(HOSTILE_TEXT, 40)
    kept = 0
    for title in titles:
        try:
            doc = await store.create_document("lead", "SOP", title, "x")
        except QmsError as exc:
            assert one_line(str(exc)) and len(str(exc)) < 600, (repr(title)[:80], str(exc)[:300])
            continue
        kept += 1
        assert (await store.get_document(doc.id)).title == doc.title  # stored as given (or as normalised once)
        assert doc.id.startswith("SOP-") and "/" not in doc.id and ".." not in doc.id
    assert kept >= 1
    assert not os.path.exists("/tmp/crowd-title")


async def test_hostile_doc_types_are_refused(store):
    from qms.errors import QmsError

    for doc_type in ["../SOP", "SOP/..", "sop\x00", "", "X" * 1000] + examples(st.text(max_size=10), 20):
        if doc_type in ("SOP", "SPEC", "CR", "TP"):
            continue
        with pytest.raises(QmsError) as err:
            await store.create_document("lead", doc_type, "t", "x")
        assert one_line(str(err.value)) and len(str(err.value)) < 600
    assert await store.list_documents() == []
