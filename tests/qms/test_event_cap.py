"""Event details over 64 KiB are stored as a summary that always fits, never refused
(an audit record must not be dodged by making it large)."""

from __future__ import annotations

import json

from qms.events import MAX_DETAIL_BYTES, fit_detail


def stored_size(event) -> int:
    return len(json.dumps(event.detail, sort_keys=True).encode())


async def test_a_large_detail_is_summarised_keeping_small_entries_and_sizes(store):
    big = {"ok": True, "via": "socket", "reason": "why", "args": {f"k{i}": "v" * 100 for i in range(700)},
           "blob": "x" * 70_000}
    eid = await store.append_event("hub", "hub.call", "send_message", big)
    [event] = [e for e in await store.events_after(eid - 1) if e.id == eid]
    d = event.detail
    assert (d["ok"], d["via"], d["reason"]) == (True, "socket", "why")  # small entries kept whole
    t = d["truncated"]
    assert t["bytes"] > MAX_DETAIL_BYTES and t["more_keys"] == 0
    assert t["sizes"]["blob"] == {"bytes": 70_002}
    assert t["sizes"]["args"]["keys"] == 700 and t["sizes"]["args"]["sizes"]["k0"] == 102
    assert len(t["sizes"]["args"]["sizes"]) == 16  # its first keys, with their sizes
    assert stored_size(event) <= MAX_DETAIL_BYTES


def test_the_summary_fits_whatever_the_keys_and_values():
    nasty_key = "\U0001f600\x00" * 5000  # each character 6-12 bytes as JSON
    cases = [
        {f"{nasty_key}{i}": "\U0001f600" * 300 for i in range(3000)},  # many huge keys
        {"k" * 900_000: 1},  # one huge key name
        {f"{i}": {f"{nasty_key}{j}": j for j in range(100)} for i in range(200)},  # large nested objects
        {str(i): "\x01" * 250 for i in range(2000)},  # many values just under "small"
    ]
    for detail in cases:
        out = fit_detail(detail)
        size = len(json.dumps(out, sort_keys=True).encode())
        assert size <= MAX_DETAIL_BYTES // 2 + 1024, size
        t = out["truncated"]
        assert t["bytes"] > MAX_DETAIL_BYTES
        named = len(out) - 1 + len(t["sizes"])
        assert named + t["more_keys"] == len(detail)  # every key is either named or counted


def test_a_detail_that_fits_is_kept_as_it_is():
    detail = {"a": "x" * 60_000, "b": [1, 2, 3]}
    assert fit_detail(detail) is detail


async def test_a_detail_just_under_the_cap_still_fits_with_the_stores_meta(store):
    store.event_meta = {"by_operator": True}
    filler = "x" * (MAX_DETAIL_BYTES - len('{"a": ""}'))  # exactly at the cap on its own
    eid = await store.append_event("hub", "hub.call", "x", {"a": filler})
    [event] = [e for e in await store.events_after(eid - 1) if e.id == eid]
    assert event.detail["by_operator"] is True and event.detail["truncated"]["sizes"]["a"]["bytes"] == len(filler) + 2
    assert stored_size(event) <= MAX_DETAIL_BYTES
