"""The settlement tests' exchange: a fresh database and a fresh two-partition ``executions``
topic per test, with the settlement worker of :mod:`tests.settlement.harness`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fixtures import NewTopicFactory
from tests.settlement.harness import Exchange, exchange


@pytest.fixture
async def ex(
    exchange_dsn: str, kafka_bootstrap: str, new_topic: NewTopicFactory
) -> AsyncIterator[Exchange]:
    topic = await new_topic("executions", partitions=2)
    async with exchange(exchange_dsn, kafka_bootstrap, topic) as the_exchange:
        yield the_exchange
