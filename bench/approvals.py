"""The approval queue: from an answer to the waiting agent's side holding it, beside the answer's
commit alone, same store file, same machine, same run.

    .venv/bin/python bench/approvals.py [--rounds N] [--dir DIR]

For each round a request is opened with ``request_permission`` (the agent's side, waiting) and
answered, and the time from the answer's start to the waiter's ``Decision`` is taken:

  - answered in the same process (the console, the hub's tool): ``answer_permission`` wakes
    the waiter at once;
  - answered by another process (``crowdtui approvals allow``, a chat through dispatch): here
    a second ``Store`` on the same file answering with ``qms.permissions.answer_request``;
    the waiter sees it at its next look at the events (``crowdtui.hub.approvals.POLL``);
  - the reference: ``qms.permissions.answer_request`` alone on a pending request nobody
    waits for (its transaction and fsync), which shares no code with the waiting.

Prints medians and 90th percentiles in milliseconds and the ratios to the reference.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crowdtui.hub import approvals  # noqa: E402
from qms import Store, permissions  # noqa: E402


async def pending_id(store) -> int:
    while True:
        rows = await permissions.list_requests(store)
        if rows:
            return rows[0].id
        await asyncio.sleep(0.001)


async def answered_by(store, answer) -> float:
    """Seconds from the answer's start to the waiter holding the decision."""
    waiting = asyncio.create_task(approvals.request_permission(store, agent="bench", tool="edit", title="bench",
                                                               timeout=60))
    rid = await pending_id(store)
    t0 = time.perf_counter()
    await answer(rid)
    decision = await waiting
    assert decision.outcome == "allow_once", decision
    return time.perf_counter() - t0


async def commit_only(store) -> float:
    req, _ = await permissions.open_request(store, agent="bench", tool="edit", title="bench", now=time.time(),
                                            timeout=60)
    t0 = time.perf_counter()
    await permissions.answer_request(store, req.id, "allow_once", actor="operator", now=time.time())
    return time.perf_counter() - t0


def summary(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs) * 1000, xs[int(0.9 * (len(xs) - 1))] * 1000


async def main(rounds: int, folder: Path) -> None:
    db = folder / "crowd.db"
    store = await Store.open(db)
    other = await Store.open(db)
    try:
        await store.upsert_agent("bench", path="bench", tier=0)
        here, there, bare = [], [], []
        for _ in range(rounds):  # interleaved, so a noisy moment hits all three alike
            here.append(await answered_by(store, lambda rid: approvals.answer_permission(
                store, rid, "allow_once", "operator")))
            there.append(await answered_by(store, lambda rid: permissions.answer_request(
                other, rid, "allow_once", actor="operator", now=time.time())))
            bare.append(await commit_only(store))
    finally:
        await other.close()
        await store.close()
    ref = summary(bare)
    print(f"approval answers, {rounds} rounds each (ms: median / p90)")
    print(f"  reference: the answer's commit alone      {ref[0]:8.2f} / {ref[1]:8.2f}")
    for label, xs in (("answered in the same process", here), ("answered by another process", there)):
        med, p90 = summary(xs)
        print(f"  {label:<40} {med:8.2f} / {p90:8.2f}   x{med / ref[0]:.1f} the reference")
    print(f"  (another process is seen at the waiter's next look: every {approvals.POLL * 1000:.0f} ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dir", type=Path, default=None, help="where the store file goes (default: next to this script)")
    args = ap.parse_args()
    base = args.dir or Path(__file__).resolve().parent
    folder = Path(tempfile.mkdtemp(prefix="bench-approvals-", dir=base))
    try:
        asyncio.run(main(args.rounds, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
