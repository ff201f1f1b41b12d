"""Each engine test gets its own `orders`/`executions` topics (two partitions, the market on
partition 1, so that partition indexing is exercised) and its own Redis prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cex.stack.settings import StackSettings
from tests.engine.harness import Topology
from tests.fixtures import NewTopicFactory


@pytest.fixture
async def topo(
    stack: StackSettings, new_topic: NewTopicFactory, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Topology]:
    topo = Topology(
        bootstrap=stack.kafka_bootstrap,
        redis_url=stack.redis_url,
        orders=await new_topic("orders", partitions=2),
        executions=await new_topic("executions", partitions=2),
        prefix=redis_prefix,
        partition=1,
        log_dir=tmp_path,
        engine_env={
            "CEX_ENGINE_BATCH_MAX": "64",
            "CEX_ENGINE_SNAPSHOT_EVERY": "300",
            "CEX_ENGINE_SNAPSHOT_INTERVAL_S": "1",
        },
    )
    yield topo
    for process in topo.processes:  # a failed test may leave one running
        process.kill()
