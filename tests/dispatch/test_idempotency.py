"""Property: however a channel retries and interleaves, each (channel, id) is stored once,
keeps its first text, and reaches the inbox exactly once (real store files, fixed seed)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, seed, settings, strategies as st

from crowdtui.dispatch.inbound import parse_inbound
from crowdtui.dispatch.routes import add_route
from crowdtui.dispatch.service import Dispatch

sends = st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["a", "b", "@qa", "/who", "x y"]),
                           st.booleans()), min_size=1, max_size=25)


async def scenario(root: Path, plan) -> None:
    from qms import Store

    store = await Store.open(root / "crowd.db")
    try:
        for name in ("lead", "qa"):
            await store.upsert_agent(name, path=name, tier=0)
        await add_route(store, "platform=local", "lead", actor="operator", now=0)
        dispatch = Dispatch(store, log=lambda line: None)
        ch, _ = await dispatch.register(name="local", platform="local", callback_url="http://127.0.0.1:9",
                                      prefixes=["local:"])
        first: dict[str, str] = {}
        batch = []
        for i, text, route_now in plan:
            mid = f"m{i}"
            first.setdefault(mid, text)
            batch.append(dispatch.receive(ch, parse_inbound({"id": mid, "chat": "local:c", "text": text})))
            if route_now:  # some arrive together (one commit), some apart, routing in between
                await asyncio.gather(*batch)
                batch = []
                await dispatch.route_pending()
        await asyncio.gather(*batch)
        await dispatch.route_pending()
        rows = await store.query("SELECT msg_id, text, status FROM engine_inbound")
        assert {r["msg_id"]: r["text"] for r in rows} == first
        assert all(r["status"] != "new" for r in rows)
        delivered = [m for a in ("lead", "qa") for m in await store.inbox(a, limit=1000)]
        refs = [m.body.split(" | ref local/", 1)[1].split("]", 1)[0] for m in delivered]
        assert len(refs) == len(set(refs))
        routed = {r["msg_id"] for r in rows if r["status"] == "routed"}
        assert set(refs) == routed
    finally:
        await store.close()


@seed(20261122)
@settings(max_examples=25, deadline=None, derandomize=True)
@given(plan=sends)
def test_each_message_is_stored_once_and_routed_once(plan):
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp), plan))
