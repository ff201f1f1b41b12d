"""Fixtures shared by the end-to-end test trees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cex.stack.settings import StackSettings
from e2e.api.conftest import Exchange, whole_exchange


@pytest.fixture(scope="session")
async def exchange(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Exchange]:
    """The whole exchange (trading API, relay, engines, settlement, public API) as
    processes, once per test session for the API's and the web UI's tests."""
    async with whole_exchange(stack, tmp_path_factory) as running:
        yield running
