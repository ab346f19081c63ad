"""`crowdtui serve` as a real process: health, one per workspace, clean stop, no textual,
and SIGKILL under a flood of inbound messages loses nothing that was acknowledged."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest

from serve_helpers import cli, start_serve, stop, wait_ready, write_agent

from tests.waiting import wait_for


async def test_serve_health_single_instance_and_clean_sigterm(workspace):
    write_agent(workspace, "bot")
    proc = start_serve(workspace, "--no-runtime")
    try:
        info = await wait_ready(workspace, proc)
        assert info["url"].startswith("http://127.0.0.1:")
        from crowdtui.dispatch.serve import read_info

        assert read_info(workspace)["pid"] == proc.pid
        assert (workspace.crowd_dir / "run" / "serve.json").stat().st_mode & 0o077 == 0
        async with httpx.AsyncClient(trust_env=False) as client:
            health = (await client.get(info["url"] + "/health")).json()
        assert health["ok"] is True and health["pid"] == proc.pid and health["hub"] is True
        # an agent added to the roster while serve runs is registered (routes can target it)
        from qms import Store

        write_agent(workspace, "late")
        store = await Store.open(workspace.db_path)
        try:
            await wait_for(lambda: store.get_agent("late"), timeout=30, what="serve to register a new agent")
        finally:
            await store.close()
        second = cli(workspace, "serve", "--no-runtime", timeout=30)
        assert second.returncode == 1
        assert f"already runs for this workspace (pid {proc.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        rc, out, err = stop(proc, signal.SIGTERM)
    assert rc == 0, err
    assert "TEXTUAL_LOADED=False" in out
    lines = err.strip().splitlines()
    assert any("serve: listening on http://127.0.0.1:" in ln for ln in lines)
    assert lines[-1].endswith("serve: stopped")
    assert not (workspace.crowd_dir / "run" / "serve.json").exists()
    # the lock is free again
    proc = start_serve(workspace, "--no-runtime", "--no-hub")
    try:
        await wait_ready(workspace, proc)
    finally:
        rc, _, err = stop(proc, signal.SIGINT)
    assert rc == 0, err


async def test_sigkill_during_a_flood_loses_and_duplicates_nothing_acknowledged(workspace, channel):
    from qms import Store

    write_agent(workspace, "bot")
    proc = start_serve(workspace, "--no-runtime", "--no-hub", "--health-interval", "60")
    info = await wait_ready(workspace, proc)
    assert cli(workspace, "route", "add", "platform=flood", "bot").returncode == 0
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        r = await client.post(info["url"] + "/channels/register",
                              json={"name": "flood", "callback_url": channel.url, "prefixes": ["flood:"]},
                              headers={"Authorization": f"Bearer {info['register_key']}"})
        token = r.json()["token"]
        acked: set[str] = set()
        attempted: set[str] = set()
        killed = asyncio.Event()

        async def sender(worker: int) -> None:
            n = 0
            while not killed.is_set():
                mid = f"w{worker}-{n}"
                n += 1
                attempted.add(mid)
                try:
                    r = await client.post(info["url"] + "/channels/inbound",
                                          json={"id": mid, "chat": f"flood:{worker}", "text": f"msg {mid}"},
                                          headers={"Authorization": f"Bearer {token}"})
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    acked.add(mid)

        workers = [asyncio.create_task(sender(w)) for w in range(8)]
        await wait_for(lambda: _at_least(acked, 300), timeout=60, what="300 acknowledged messages")
        proc.send_signal(signal.SIGKILL)
        killed.set()
        await asyncio.gather(*workers)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
        assert len(acked) >= 300
        from crowdtui.dispatch.serve import read_info

        assert read_info(workspace) is None  # the file a killed serve left does not count

        proc = start_serve(workspace, "--no-runtime", "--no-hub", "--health-interval", "60")
        try:
            info = await wait_ready(workspace, proc)
            store = await Store.open(workspace.db_path)
            try:
                async def settled():
                    rows = await store.query("SELECT COUNT(*) FROM engine_inbound WHERE status = 'new'")
                    return rows[0][0] == 0

                await wait_for(settled, timeout=60, what="the restarted serve to route the backlog")
                # the channel retries everything it sent: all duplicates, nothing new stored
                for mid in sorted(attempted)[:200]:
                    r = await client.post(info["url"] + "/channels/inbound",
                                          json={"id": mid, "chat": f"flood:{mid[1:].split('-')[0]}",
                                                "text": f"msg {mid}"},
                                          headers={"Authorization": f"Bearer {token}"})
                    assert r.status_code == 200
                    if mid in acked:
                        assert r.json()["duplicate"] is True
                await wait_for(settled, timeout=60, what="routing of retried messages")
                rows = await store.query("SELECT msg_id, status FROM engine_inbound WHERE channel = 'flood'")
                stored = {r["msg_id"]: r["status"] for r in rows}
                assert acked <= set(stored), f"lost {len(acked - set(stored))} acknowledged messages"
                assert all(stored[m] == "routed" for m in acked)
                refs = await store.query(
                    "SELECT body FROM messages WHERE recipient = 'bot' AND sender = 'flood'")
                per_ref: dict[str, int] = {}
                for row in refs:
                    ref = row["body"].split(" | ref flood/", 1)[1].split("]", 1)[0]
                    per_ref[ref] = per_ref.get(ref, 0) + 1
                assert all(per_ref.get(m) == 1 for m in acked), "an acknowledged message was not routed exactly once"
                assert max(per_ref.values()) == 1 and set(per_ref) == set(stored)
            finally:
                await store.close()
        finally:
            rc, _, err = stop(proc)
        assert rc == 0, err


async def _at_least(items: set, n: int) -> bool:
    return len(items) >= n


@pytest.mark.parametrize("args, says", [
    (("route", "add", "user=x", "ghost"), "unknown key 'user'"),
    (("route", "add", "*", "ghost"), "no agent named 'ghost'"),
    (("route", "add", "*", "lead", "--position", "0"), "1 or more"),
    (("route", "mv", "99", "1"), "no route 99"),
    (("route", "approve", "99"), "no route 99"),
    (("route", "reject", "99", "--json"), "no route 99"),
    (("task", "add", "t", "lead", "every:soon", "x"), "not understood"),
    (("task", "pause", "nope"), "no task named 'nope'"),
    (("onboard", "approve", "local:x", "lead"), "no messages are held"),
    (("onboard", "deny", "local:x"), "no messages are held"),
])
async def test_cli_refusals_are_one_clear_line(store, workspace, args, says):
    before = await store.last_event_id()
    r = await asyncio.to_thread(cli, workspace, *args)
    assert r.returncode != 0
    assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert await store.last_event_id() == before  # nothing changed


async def test_cli_routes_tasks_and_onboarding(store, workspace):
    async def run(*args):
        r = await asyncio.to_thread(cli, workspace, *args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    await run("route", "add", "platform=local", "lead")
    await run("route", "add", "chat=local:ops*", "qa", "--position", "1")
    out = await run("route", "ls")
    assert out.splitlines()[1].split()[2:] == ["qa", "operator", "active", "chat=local:ops*"]  # owner, state
    await run("route", "mv", "1", "1")
    assert [r["agent"] for r in json.loads(await run("route", "ls", "--json"))] == ["lead", "qa"]
    await run("route", "rm", "1")
    assert [r["agent"] for r in json.loads(await run("route", "ls", "--json"))] == ["qa"]
    # an agent's wide route (here added with --as) waits below the operator's until approved
    out = await run("--as", "lead", "route", "add", "*", "lead", "--position", "1")
    assert "at 2 (asked 1;" in out and "PENDING" in out
    out = await run("route", "ls")
    assert out.splitlines()[2].split()[2:] == ["lead", "lead", "pending", "*"]
    assert "route approve ID" in out.splitlines()[-1]
    r = await asyncio.to_thread(cli, workspace, "--as", "lead", "route", "approve", "3")
    assert r.returncode != 0 and "only the operator may approve" in r.stderr
    assert json.loads(await run("route", "approve", "3", "--json"))["state"] == "active"
    await run("--as", "lead", "route", "add", "sender=ann", "lead")
    assert "rejected and removed" in await run("route", "reject", "4")
    assert [(r["owner"], r["state"]) for r in json.loads(await run("route", "ls", "--json"))] == [
        ("operator", "active"), ("lead", "active")]

    await run("task", "add", "standup", "lead", "every:1d", "post the standup")
    await run("task", "pause", "standup")
    [t] = json.loads(await run("task", "ls", "--json"))
    assert (t["name"], t["state"], t["schedule"]) == ("standup", "paused", "every:1d")
    await run("task", "resume", "standup")
    await run("task", "rm", "standup")
    assert json.loads(await run("task", "ls", "--json")) == []

    from qms.channels import register_channel
    from crowdtui.dispatch.inbound import parse_inbound, store_inbound
    from crowdtui.dispatch.service import Dispatch

    ch, _ = await register_channel(store, name="slack", platform="slack", callback_url="http://127.0.0.1:9",
                                   prefixes=["slack:"], now=0)
    await store_inbound(store, ch, parse_inbound({"id": "1", "chat": "slack:new", "text": "hi"}), now=0)
    await Dispatch(store, log=lambda line: None).route_pending()
    out = await run("onboard", "ls")
    assert "slack:new" in out and "1 message" in out
    [c] = json.loads(await run("channel", "ls", "--json"))
    assert (c["name"], c["state"], c["prefixes"]) == ("slack", "up", ["slack:"])
    assert "queued" in await run("channel", "send", "slack:new", "welcome")
    r = await asyncio.to_thread(cli, workspace, "--as", "qa", "channel", "send", "slack:new", "not yet")
    assert r.returncode == 1 and "qa may not reply to chat 'slack:new'" in r.stderr
    from qms.outbound import list_outbound

    assert [(o.agent, o.text) for o in await list_outbound(store, chat="slack:new")] == [("operator", "welcome")]
    await run("onboard", "approve", "slack:new", "qa")
    await Dispatch(store, log=lambda line: None).route_pending()
    assert [m.body.splitlines()[1] for m in await store.inbox("qa")] == ["hi"]
    assert "no chats are waiting" in await run("onboard", "ls")


def test_channel_local_without_a_running_serve_says_what_to_do(workspace):
    r = cli(workspace, "channel", "local", stdin="hello\n", timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip() == ("crowdtui: no crowdtui serve runs for this workspace (no .crowd/run/serve.json); "
                                "start one with `crowdtui serve`")
