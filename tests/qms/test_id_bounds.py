"""Integer ids beyond SQLite's 64-bit range are refused as bad input, never passed to SQLite
(which raises OverflowError there); nothing changes."""

from __future__ import annotations

import pytest

from qms.errors import InvalidInput

TOO_BIG = [2**63, 99999999999999999999999]
BAD = [0, -1, True, "1", 1.0, None, *TOO_BIG]


@pytest.mark.parametrize("bad", BAD, ids=repr)
async def test_mark_read_refuses_ids_out_of_range(store, bad):
    [m] = await store.send_message("alice", "bob", "hello")
    with pytest.raises(InvalidInput, match="not a valid id"):
        await store.mark_read("bob", [m.id, bad])
    assert [x.read_at for x in await store.inbox("bob")] == [None]  # the good id was not marked either


@pytest.mark.parametrize("bad", BAD, ids=repr)
async def test_get_message_refuses_ids_out_of_range(store, bad):
    with pytest.raises(InvalidInput, match="message id .* not a valid id"):
        await store.get_message(bad)


@pytest.mark.parametrize("bad", TOO_BIG, ids=repr)
async def test_task_ids_and_versions_out_of_range_are_refused(store, bad):
    with pytest.raises(InvalidInput, match="task id .* not a valid id"):
        await store.reassign_task(bad, "bob")
    with pytest.raises(InvalidInput, match="version .* not a valid id"):
        await store.get_document("SOP-001", bad)


async def test_the_largest_id_is_accepted(store):
    assert await store.mark_read("bob", [2**63 - 1]) == 0
