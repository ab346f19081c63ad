"""A channel whose client library is missing says so once and ends, instead of retrying
for ever (an install fault is not a network fault)."""

from __future__ import annotations

import asyncio

import pytest

from crowdtui.channels.base import NetworkChannel
from crowdtui.cli.channel_cmds import run_channel
from crowdtui.errors import CrowdError
from tests.channels.conftest import KEY

pytestmark = pytest.mark.timeout(60)


class Unbuilt(NetworkChannel):
    platform = "unbuilt"
    libraries = (("crowd_no_such_module", "crowd-no-such-dist"),)


class BreaksOnConnect(NetworkChannel):
    platform = "breaks"

    async def connect(self) -> None:
        import crowd_no_such_module  # noqa: F401

    async def pump(self) -> None:
        await asyncio.sleep(1)


def make(cls, crowd, tmp_path):
    return cls(name=cls.platform, dispatch_url=crowd.url, register_key=KEY,
               state_path=tmp_path / "state.json", status=lambda _line: None, max_backoff=0.2)


async def test_a_missing_client_library_is_refused_at_start_naming_the_package(crowd, tmp_path):
    ch = make(Unbuilt, crowd, tmp_path)
    with pytest.raises(CrowdError, match="crowd-no-such-dist"):
        await ch.start()
    assert ch.token is None  # never registered with dispatch
    await ch.close()


async def test_an_import_failing_inside_connect_ends_the_channel_instead_of_retrying(crowd, tmp_path):
    ch = make(BreaksOnConnect, crowd, tmp_path)
    with pytest.raises(CrowdError, match="crowd_no_such_module.*reinstall"):
        await asyncio.wait_for(run_channel(ch), timeout=20)
    assert ch.stopping.is_set()
