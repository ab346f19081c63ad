"""Blocking Docker SDK calls off the event loop, shared by the runtime's modules."""

from __future__ import annotations

import asyncio

from crowdtui.runtime.container_info import ContainerFailed
from crowdtui.runtime.engine import engine_errors


async def in_thread(fn, *args):
    """Run a blocking SDK call off the event loop; engine trouble becomes a one-line error."""
    with engine_errors(ContainerFailed):
        return await asyncio.to_thread(fn, *args)
