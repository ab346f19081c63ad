from __future__ import annotations

import pytest
from qms import Store


@pytest.fixture
async def store(workspace):
    s = await Store.open(workspace.db_path)
    yield s
    await s.close()
